"""What a node's long-poll of its snapshot sees (``GET /api/v1/edge/nodes/{id}/config``).

``read_state`` reads what the poll waits on (the revision, the node's pending purges), notes
that the node was seen, and realigns the revision counter when revision numbers may have been
used twice (``services.realign``); ``answer`` builds the ``ConfigPoll`` body once something
is newer or the wait is over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from edgeplane.errors import Forbidden, InvalidInput, NotFound
from edgeplane.protocol.config import NodeSpec
from edgeplane.protocol.messages import PurgeTask
from edgeplane.services.edge_nodes import SEEN_GRANULARITY, node_row, pending_purges, touch
from edgeplane.services.realign import Realigner
from edgeplane.snapshot.cache import SnapshotCache, UnknownObjects, objects_body
from edgeplane.snapshot.functions import runs_functions
from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow

_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PollState:
    revision: int
    purges: list[PurgeTask]
    node: NodeSpec
    functions: bool = False  # the node runs edge functions (snapshot.functions.runs_functions)


def read_state(
    db: Database,
    actor: Actor,
    node_id: str,
    after: int = -1,
    realigner: Realigner | None = None,
) -> PollState:
    """What the poll waits on; notes (coarsely) that the node was seen. With ``realigner``,
    the database's timeline is checked first (at most once a second), and a node that holds
    a revision newer than the database's (``after``) has the counter moved past it
    (``services.realign``)."""
    if realigner is not None:
        realigner.check()
    with db.read(actor, PLATFORM_PROJECT) as tx:
        row = node_row(tx, node_id)
        seen = row.last_seen_at
        stale = seen is None or utcnow() - seen >= SEEN_GRANULARITY
        polled = PollState(
            revision=tx.current_revision(),
            purges=pending_purges(tx, row),
            node=NodeSpec(id=row.id, name=row.name, region=row.region),
            functions=runs_functions(row.protocol, row.functions),
        )
    if stale:
        with db.transaction(actor, PLATFORM_PROJECT) as tx:
            touch(tx, node_id)
    if realigner is not None and after > polled.revision:
        polled.revision = realigner.node_ahead(node_id, after, polled.revision)
    return polled


def answer(
    db: Database,
    snapshots: SnapshotCache,
    actor: Actor,
    state: PollState,
    after: int,
    refs: bool = False,
    have: str | None = None,
) -> bytes:
    """The long-poll's JSON body (``ConfigPoll``), the snapshot's body spliced in as is: the
    manifest with ``refs`` (built once per revision), as a delta from the node's manifest of
    revision ``after`` when it says it has that (``have``, its hash) and the control plane
    still has it; else the full snapshot."""
    with db.read(actor, PLATFORM_PROJECT) as tx:
        snap = snapshots.for_node(tx.session, state.node, state.revision, functions=state.functions)
    newer = snap.revision > after
    purges = json.dumps([p.model_dump(mode="json") for p in state.purges])
    config = snap.body if newer and not refs else b"null"
    delta = snapshots.delta(snap, after, have) if newer and refs and have else None
    manifest = snap.manifest if newer and refs and delta is None else b"null"
    return b"".join(
        [
            b'{"revision":',
            str(snap.revision).encode(),
            b',"hash":',
            json.dumps(snap.hash).encode(),
            b',"config":',
            config,
            b',"purges":',
            purges.encode(),
            b',"manifest":',
            manifest,
            b',"delta":',
            delta or b"null",
            b"}",
        ]
    )


def objects(
    db: Database, snapshots: SnapshotCache, actor: Actor, node_id: str, hashes: list[str]
) -> bytes:
    """The bodies of the objects a node's manifest names (``ObjectsAnswer`` JSON). Only the
    node's own token may fetch them (they hold private keys); an unknown hash is refused."""
    with db.read(actor, PLATFORM_PROJECT) as tx:
        row = node_row(tx, node_id)
        if row.token_id is not None and row.token_id != actor.token_id:
            raise Forbidden(f"this edge token is not the one edge node {node_id!r} registered with")
    bad = [h for h in hashes if not _HASH.match(h)]
    if bad:
        raise InvalidInput(f"not an object hash (64 hex digits): {bad[0][:80]!r}", field="hashes")
    try:
        try:
            found = snapshots.objects(hashes)
        except UnknownObjects:
            # Another replica (or worker) answered the poll: build the newest revision here.
            with db.read(actor, PLATFORM_PROJECT) as tx:
                snapshots.view(tx.session, tx.current_revision())
            found = snapshots.objects(hashes)
    except UnknownObjects as exc:
        shown = ", ".join(exc.missing[:5]) + (" ..." if len(exc.missing) > 5 else "")
        raise NotFound(
            f"{len(exc.missing)} unknown object(s) (not in the last revisions): {shown}; "
            "poll the config again"
        ) from None
    return objects_body(found)
