"""Certificate orders that run in the background of the API process, with their progress.

``POST /ssl/{domain}?wait=false`` starts the order in a thread and answers 202 with the
order's id at once; ``GET /ssl/{domain}/orders/{id}`` shows its progress messages (those of
the ACME client: order created, challenges published, valid, finalized, downloaded) and, when
done, the certificate or the error. Orders live in this process's memory for an hour after
they end (a replica answers for the orders it runs).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from edgeplane.errors import EdgeplaneError, NotFound
from edgeplane.model.certificates import CertificateIssued
from edgeplane.model.common import Output
from edgeplane.store.tables import utcnow

KEEP_S = 3600.0


class OrderEvent(Output):
    at: datetime
    message: str


class OrderStatus(Output):
    id: str
    domain: str
    status: Literal["running", "valid", "failed"]
    events: list[OrderEvent]
    result: CertificateIssued | None = None
    error: str | None = None
    error_status: int | None = None  # the HTTP status the synchronous call would have had


@dataclass
class _Order:
    id: str
    domain: str
    project: str
    events: list[OrderEvent] = field(default_factory=list)
    status: Literal["running", "valid", "failed"] = "running"
    result: CertificateIssued | None = None
    error: str | None = None
    error_status: int | None = None
    ended: float | None = None

    def view(self) -> OrderStatus:
        return OrderStatus(
            id=self.id,
            domain=self.domain,
            status=self.status,
            events=list(self.events),
            result=self.result,
            error=self.error,
            error_status=self.error_status,
        )


class Orders:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, _Order] = {}

    def start(
        self,
        project: str,
        domain: str,
        run: Callable[[Callable[[str], None]], CertificateIssued],
    ) -> OrderStatus:
        order = _Order(id=f"order-{secrets.token_hex(6)}", domain=domain, project=project)

        def say(message: str) -> None:
            with self._lock:
                order.events.append(OrderEvent(at=utcnow(), message=message))

        def work() -> None:
            try:
                result = run(say)
            except EdgeplaneError as exc:
                with self._lock:
                    order.status, order.error, order.error_status = (
                        "failed",
                        exc.message,
                        exc.status,
                    )
            except Exception as exc:  # reported to the caller, never lost in a thread
                with self._lock:
                    order.status, order.error, order.error_status = "failed", str(exc), 500
            else:
                with self._lock:
                    order.status, order.result = "valid", result
            finally:
                with self._lock:
                    order.ended = time.monotonic()

        with self._lock:
            self._forget_old()
            self._orders[order.id] = order
        say("order accepted")
        threading.Thread(target=work, name=order.id, daemon=True).start()
        return order.view()

    def get(self, project: str, domain: str, order_id: str) -> OrderStatus:
        with self._lock:
            order = self._orders.get(order_id)
            if order is None or order.project != project or order.domain != domain:
                raise NotFound(f"order {order_id!r} not found for {domain!r}")
            return order.view()

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, o in self._orders.items() if o.ended and now - o.ended > KEEP_S]:
            del self._orders[key]
