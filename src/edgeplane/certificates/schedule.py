"""When certificates are renewed, and how failed renewals back off (pure)."""

from __future__ import annotations

from datetime import datetime

from edgeplane.store.tables import CertificateRow

RETRY_MAX_S = 6 * 3600.0
RENEWABLE = ("lets_encrypt", "internal")  # issuers renewed here; uploads are renewed by people


def due_at(row: CertificateRow, fraction: float) -> datetime:
    """When renewal is due: ``fraction`` of the lifetime, or the CA's suggestion if earlier."""
    due = row.not_before + (row.not_after - row.not_before) * fraction
    ari = (row.renewal or {}).get("ari_time")
    if ari:
        due = min(due, datetime.fromisoformat(str(ari)))
    return due


def backoff_s(attempts: int, base: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (doubling, capped)."""
    return float(min(RETRY_MAX_S, base * 2 ** max(0, attempts - 1)))
