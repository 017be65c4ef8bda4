"""The edge protocol: what the control plane and an edge node say to each other.

Both sides import this package and nothing of the other side: ``config`` is the snapshot a
node serves (``EdgeConfig``), ``messages`` the requests and answers of the edge API
(register, long-poll, acknowledgements, heartbeats, health, purges, analytics), ``dnssec``
the zone signing key material the control plane makes and every node's DNS server imports,
``versions`` the protocol's versions (which each side speaks and serves, what each added) and
``lenient`` how an agent reads a snapshot with fields it does not know.
"""
