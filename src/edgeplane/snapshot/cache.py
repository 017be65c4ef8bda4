"""The snapshot of the newest revision, built once and shared by every node's long-poll.

Every node's snapshot differs only by its ``node``, so one build of the served state serves
them all, and each node's JSON body and content hash are computed once per revision. The
control plane makes one ``SnapshotCache`` for its database (``create_app``) and passes it to
whoever serves snapshots or compares a node's hash with the current one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session

from edgeplane.protocol.config import EdgeConfig, NodeSpec
from edgeplane.secrets import SecretBox
from edgeplane.snapshot.build import Served, assemble, served
from edgeplane.snapshot.load import CertCache, load_state
from edgeplane.store import revision as revisions


@dataclass(frozen=True)
class NodeSnapshot:
    config: EdgeConfig
    hash: str
    body: bytes  # config.model_dump_json(), ready to send


class SnapshotCache:
    """The snapshot of the newest revision seen, built once, and each node's view of it."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._lock = threading.Lock()
        self._revision = -1
        self._base: Served | None = None
        self._nodes: dict[NodeSpec, NodeSnapshot] = {}
        self._certs: CertCache = {}

    def base(self, session: Session, revision: int) -> tuple[int, Served]:
        """The served state at ``revision`` or newer (built when the cache is older)."""
        with self._lock:
            if self._base is not None and self._revision >= revision:
                return self._revision, self._base
            # The revision first: the rows read after it are at least as new as it.
            current = revisions.current(session)
            base = served(load_state(session, self._box, certs=self._certs))
            self._revision, self._base, self._nodes = current, base, {}
            return current, base

    def for_node(self, session: Session, node: NodeSpec, revision: int) -> NodeSnapshot:
        current, base = self.base(session, revision)
        with self._lock:
            hit = self._nodes.get(node)
            if hit is not None and self._revision == current:
                return hit
        config = assemble(base, node, current)
        snap = NodeSnapshot(
            config=config, hash=config.content_hash(), body=config.model_dump_json().encode()
        )
        with self._lock:
            if self._revision == current:
                if len(self._nodes) > 10_000:
                    self._nodes.clear()
                self._nodes[node] = snap
        return snap
