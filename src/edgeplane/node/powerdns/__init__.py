"""The edge node's authoritative DNS: a PowerDNS server of its own, fed through its HTTP API.

``process`` runs ``pdns_server``, ``api`` speaks its HTTP API, ``plan`` computes (purely) the
changes that turn what it serves into a snapshot's zones, ``engine`` applies them atomically
per zone with rollback; the zones' signing keys come from ``edgeplane.protocol.dnssec``.
"""
