"""The ``edgeplane`` command line: process commands and the CLI over the REST API."""
