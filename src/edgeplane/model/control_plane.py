"""The control plane's replicas as an API answer: which one runs the background jobs."""

from __future__ import annotations

from datetime import datetime

from edgeplane.model.common import Output


class Leader(Output):
    holder: str  # "host:pid:random" of the replica holding the runner lease
    epoch: int  # raised at each change of holder
    since: datetime  # when it took the lease
    renewed_at: datetime
    expires_at: datetime
    live: bool  # the lease has not expired
    url: str = ""  # the holder's public URL, when it has one
    version: str = ""


class JobState(Output):
    name: str
    interval_s: float
    lag_s: float | None  # seconds late (0: on time); None: not started on this replica


class ControlPlaneStatus(Output):
    replica: str  # the replica that answered (its holder id)
    leading: bool  # whether the replica that answered runs the background jobs
    leader: Leader | None  # None: no replica has taken the lease yet
    jobs: list[JobState]  # the answering replica's jobs (their lag while it leads)
