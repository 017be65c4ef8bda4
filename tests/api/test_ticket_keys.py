"""TLS session ticket keys in the snapshots: the same for every node, rotated by the runner's
job (a revision bump when a period starts), and never written anywhere."""

from __future__ import annotations

import json

from sqlalchemy import select
from test_edge_protocol import EDGE, edge_token, ok, register

from conftest import Api
from edgeplane.services.jobs import TicketKeyRotation
from edgeplane.snapshot.tickets import ROTATE_S, period_of
from edgeplane.store.tables import AuditRow


def _config(api: Api, token: str, node_id: str, after: int) -> dict[str, object]:
    doc = ok(api.get(f"{EDGE}/nodes/{node_id}/config", token=token, params={"after": after}))
    return dict(doc["config"])


def test_every_node_gets_the_same_keys_and_a_rotation_bumps_the_revision(api: Api) -> None:
    token = edge_token(api)
    a = register(api, token, name="node-a")
    b = register(api, token, name="node-b", region="us-east")
    first_a = _config(api, token, a["id"], 0)
    first_b = _config(api, token, b["id"], 0)
    keys = first_a["ticket_keys"]
    assert isinstance(keys, list) and len(keys) == 3  # current (encrypts), previous, next
    assert keys == first_b["ticket_keys"]
    rotation = TicketKeyRotation()
    now = 1_000 * ROTATE_S + 10.0
    assert not rotation(api.db, now=now)  # the first look: no bump
    assert not rotation(api.db, now=now + 60)  # the same period
    revision = api.db.current_revision()
    assert rotation(api.db, now=now + ROTATE_S)  # a new period: a new revision
    assert api.db.current_revision() == revision + 1
    with api.db.engine.connect() as conn:
        audits = conn.execute(select(AuditRow.kind, AuditRow.after)).all()
    rotated = [after for kind, after in audits if kind == "tls_ticket_keys"]
    assert rotated == [{"period": period_of(now + ROTATE_S)}]
    secrets = {k["key"] for k in keys}  # type: ignore[index]
    assert not any(s in json.dumps([a for _, a in audits], default=str) for s in secrets)
