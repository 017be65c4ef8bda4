"""Disaster recovery that runs: DR configs' data centers tied to the load balancers that use
their servers, failover and failback, and drills.

- ``health`` (pure): a data center's health from the edge nodes' checks and its servers'
  metrics; ``state`` (pure): a config's cycle, with hysteresis and the operator's steps;
- ``observe``: what they read, in bulk; ``live``: the state, timeline and drills, read and
  written (one transaction per step, the state row locked);
- ``monitor``: the control plane's job (every second); ``drill``: spec 004's recovery
  procedure run on purpose and measured (``drill_steps``: its steps; ``probe``: real
  requests through the edge; ``rpo``: the recovery point). A drill asked for through the API is
  queued and run by the control plane's runner (the ``DR drills`` job), which also runs the
  scheduled ones.

Which side's backends the edge serves is decided in the snapshot (``snapshot.dr``).
"""
