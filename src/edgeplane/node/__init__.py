"""The edge node: the agent and the engines it drives.

``agent`` long-polls the control plane, applies snapshots and reports back; ``nginx`` renders,
checks and runs the HTTP edge; ``powerdns`` runs the node's authoritative DNS server. Nothing
here imports the control plane's store, services or snapshot builder: a node knows only
``edgeplane.protocol`` and pure helpers (``edgeplane.bundles``, ``edgeplane.routing``).
"""
