"""The control plane's Prometheus metrics of events: what happened in this process.

One registry per process (``REGISTRY``), as a Prometheus target is one process: the API's
requests (by method, route template and status: the template, never the path, so that a
domain in a URL makes no series), revisions' propagation to the edge, purges, ACME orders and
the background jobs' runs. What is read from the database at scrape time (revision, nodes,
certificates, the pool) is ``edgeplane.services.plane_state``'s collector; ``/metrics``
(``edgeplane.api.prometheus``) serves both.

Names and units follow Prometheus' conventions: ``_total`` counters, ``_seconds`` and
``_bytes`` base units, histograms for durations.

**Several workers** (``edgeplane serve --workers N``): the supervisor names a folder in
``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus_client (``cli/workers.py``),
so every worker writes its counters and histograms to files there (prometheus_client's
multiprocess mode), and ``/metrics``, whichever worker answers, sums every worker's
(``multiprocess_dir``; a worker that died still counts: counters never go back). The process
collectors (CPU, memory, GC) describe one process, so they are left out then. Only counters and
histograms are made here: a gauge would need its ``multiprocess_mode``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes
PlatformCollector(registry=REGISTRY)  # python_info
GCCollector(registry=REGISTRY)

# API requests: the long-polls of the edge protocol wait up to 25 s; the buckets reach past it.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
PROPAGATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
ORDER_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

api_requests = Counter(
    "edgeplane_api_requests",
    "API requests answered, by method, route template and status code",
    ["method", "route", "status"],
    registry=REGISTRY,
)
api_duration = Histogram(
    "edgeplane_api_request_duration_seconds",
    "Time to answer an API request, by method and route template",
    ["method", "route"],
    buckets=API_BUCKETS,
    registry=REGISTRY,
)
node_propagation = Histogram(
    "edgeplane_node_propagation_seconds",
    "Commit of a revision to its acknowledgement by one edge node",
    buckets=PROPAGATION_BUCKETS,
    registry=REGISTRY,
)
propagation = Histogram(
    "edgeplane_propagation_seconds",
    "Commit of a revision to its acknowledgement by every live edge node",
    buckets=PROPAGATION_BUCKETS,
    registry=REGISTRY,
)
purge_duration = Histogram(
    "edgeplane_purge_duration_seconds",
    "Purge request to its completion on every live edge node",
    buckets=PROPAGATION_BUCKETS,
    registry=REGISTRY,
)
acme_order_duration = Histogram(
    "edgeplane_acme_order_duration_seconds",
    "ACME certificate orders, from the new order to the certificate or the failure",
    ["outcome"],
    buckets=ORDER_BUCKETS,
    registry=REGISTRY,
)
job_runs = Counter(
    "edgeplane_background_job_runs",
    "Runs of a background job, by outcome (ok, failed, fenced: its lease was lost)",
    ["job", "outcome"],
    registry=REGISTRY,
)
job_duration = Histogram(
    "edgeplane_background_job_duration_seconds",
    "Duration of a background job's run",
    ["job"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
leader_changes = Counter(
    "edgeplane_background_leader_terms",
    "Times this process took the runner lease and started the background jobs",
    registry=REGISTRY,
)


def multiprocess_dir() -> str | None:
    """The folder the workers of ``serve --workers N`` share their metrics in; None for one
    process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Once:
    """Keys already observed (a revision fully propagated, a purge completed), so that two
    acknowledgements arriving together observe an event once; the newest ``size`` are kept.
    In this process's memory: with several workers or replicas, acknowledgements that reach
    two of them may observe the event twice."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True


propagated = Once()
purged = Once()
