"""A domain's security posture seen from the outside, and the edge nodes' exposed surface.

- ``observed``: what a probe of one edge node saw for a domain (frozen data, no I/O);
- ``probe``: the probe itself (TLS handshakes per protocol version, an HTTPS and an HTTP
  request, DNS queries to the node's DNS server): the only module here that does network I/O
  for scores;
- ``score``: the pure scorer, probes -> checks, points, a score and a grade;
- ``policy``: the compliance catalogue and the pure evaluator of a policy;
- ``surface`` / ``portscan``: what an edge node should expose, and the TCP connect scan.
"""
