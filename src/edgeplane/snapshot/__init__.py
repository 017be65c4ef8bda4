"""The control plane's side of the wire: desired state -> each node's snapshot.

``load`` reads the desired state the edge serves from the database (a few bulk queries),
``build`` turns it into per-node ``EdgeConfig`` snapshots (pure), ``zones`` builds the DNS
zones and GeoDNS answers (pure), and ``cache`` keeps the snapshot of the newest revision so
that one build serves every node's long-poll. ``parts`` holds a revision's shared part cut
along domains and projects, and ``changes`` says which domains the revisions since changed,
so that the cache rebuilds only those.
"""
