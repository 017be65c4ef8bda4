"""What a node's long-poll of its snapshot sees (``GET /api/v1/edge/nodes/{id}/config``).

``state`` reads what the poll waits on (the revision, the node's pending purges) and notes
that the node was seen; ``answer`` builds the ``ConfigPoll`` body once something is newer or
the wait is over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgeplane.protocol.config import NodeSpec
from edgeplane.protocol.messages import PurgeTask
from edgeplane.services.edge_nodes import SEEN_GRANULARITY, node_row, pending_purges, touch
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow


@dataclass
class PollState:
    revision: int
    purges: list[PurgeTask]
    node: NodeSpec


def read_state(db: Database, actor: Actor, node_id: str) -> PollState:
    """What the poll waits on; notes (coarsely) that the node was seen."""
    with db.read(actor, PLATFORM_PROJECT) as tx:
        row = node_row(tx, node_id)
        seen = row.last_seen_at
        stale = seen is None or utcnow() - seen >= SEEN_GRANULARITY
        polled = PollState(
            revision=tx.current_revision(),
            purges=pending_purges(tx, row),
            node=NodeSpec(id=row.id, name=row.name, region=row.region),
        )
    if stale:
        with db.transaction(actor, PLATFORM_PROJECT) as tx:
            touch(tx, node_id)
    return polled


def answer(
    db: Database, snapshots: SnapshotCache, actor: Actor, state: PollState, after: int
) -> bytes:
    """The long-poll's JSON body (``ConfigPoll``), the snapshot's body spliced in as is."""
    with db.read(actor, PLATFORM_PROJECT) as tx:
        snap = snapshots.for_node(tx.session, state.node, state.revision)
    newer = snap.config.revision > after
    purges = json.dumps([p.model_dump(mode="json") for p in state.purges])
    return b"".join(
        [
            b'{"revision":',
            str(snap.config.revision).encode(),
            b',"hash":',
            json.dumps(snap.hash).encode(),
            b',"config":',
            snap.body if newer else b"null",
            b',"purges":',
            purges.encode(),
            b"}",
        ]
    )
