"""Edge functions on a node: the runtime process and its tools (TEMPORARY stand-in package of
branch issue-20-cp; the runtime's branch brings the real one)."""
