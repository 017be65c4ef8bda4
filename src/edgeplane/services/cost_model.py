"""The platform's prices: the stored cost model (``cost_model``, one row, id 1), or the
specification's defaults (``DEFAULT_MODEL``) until a platform admin sets one.

``set_model`` replaces the whole model: a field left out takes its default, an unknown field
or a wrong value is refused naming the field (``lb_tiers.1.max_backends``). The change is
audited (kind ``cost_model``, object ``1``) and reaches no edge node: prices are settings.
"""

from __future__ import annotations

from typing import Any

from edgeplane.costs.model import DEFAULT_MODEL, CostModel
from edgeplane.model.enums import Role
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import CostModelRow
from edgeplane.store.tables import utcnow

KIND = "cost_model"
ROW_ID = 1


def current(tx: Tx) -> CostModel:
    """The prices in force (no access check: every cost computation reads them)."""
    row = tx.session.get(CostModelRow, ROW_ID)
    if row is None or not row.model:
        return DEFAULT_MODEL
    return CostModel.model_validate(row.model)


def get_model(tx: Tx) -> CostModel:
    """The prices in force; anyone with a role in the transaction's project may read them."""
    tx.actor.require(tx.project, Role.VIEWER)
    return current(tx)


def set_model(tx: Tx, data: CostModel | dict[str, Any]) -> CostModel:
    """Replace the prices (platform admins only)."""
    tx.actor.require_platform_admin()
    model = data if isinstance(data, CostModel) else validate(CostModel, data)
    before = current(tx).model_dump(mode="json")
    after = model.model_dump(mode="json")
    row = tx.session.get(CostModelRow, ROW_ID)
    if row is None:
        row = CostModelRow(id=ROW_ID)
        tx.session.add(row)
    row.model = after
    row.updated_at = utcnow()
    row.updated_by = tx.actor.name
    tx.session.flush()
    tx.record("update", KIND, str(ROW_ID), before, after, global_object=True)
    return model
