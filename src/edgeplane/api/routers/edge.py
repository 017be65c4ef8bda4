"""The edge protocol (edge tokens) and the edge nodes as people see them (API tokens).

Every call of the edge protocol may say its version in the ``Edgeplane-Protocol`` header (none:
version 1); a version this control plane does not serve is refused (422, the problem document's
``protocols`` naming those it serves), and every answer of this router carries the control
plane's own version in the same header. What is sent back to a caller of an older version has
only the fields that version knows (``edgeplane.protocol.versions.for_protocol``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from edgeplane.api.deps import EdgeActor, GlobalCtx
from edgeplane.api.notify import RevisionNotifier
from edgeplane.errors import InvalidInput
from edgeplane.protocol import versions
from edgeplane.protocol.messages import (
    Ack,
    AnalyticsReport,
    ConfigPoll,
    EdgeNode,
    HealthReport,
    Heartbeat,
    NodeRegister,
    ObjectsAnswer,
    ObjectsRequest,
    PurgeAck,
    UptimeReport,
)
from edgeplane.services import bundles, edge_nodes, edge_poll, uptime
from edgeplane.services.realign import Realigner
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database


class ProtocolRoute(APIRoute):
    """A route whose answers say the control plane's edge protocol version (a header)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            response = await handler(request)
            response.headers[versions.HEADER] = str(versions.PROTOCOL_VERSION)
            return response

        return answer


router = APIRouter(prefix="/api/v1/edge", tags=["edge"], route_class=ProtocolRoute)

DEFAULT_WAIT_S = 25.0


def protocol_version(
    _actor: EdgeActor,  # who calls first: a missing or wrong token is 401/403, whatever the version
    edgeplane_protocol: Annotated[
        str | None,
        Header(
            alias=versions.HEADER,
            description="the edge protocol version the agent speaks (absent: 1)",
        ),
    ] = None,
) -> int:
    """The caller's edge protocol version, when this control plane serves it."""
    try:
        version = versions.parse_header(edgeplane_protocol)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=versions.HEADER) from None
    return edge_nodes.check_protocol(version, versions.HEADER)


Protocol = Annotated[int, Depends(protocol_version)]


def _node_answer(node: EdgeNode, protocol: int) -> Response:
    """``node`` as a caller of ``protocol`` knows it."""
    doc = versions.for_protocol(node.model_dump(mode="json"), "EdgeNode", protocol)
    return Response(content=json.dumps(doc), media_type="application/json")


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _notifier(request: Request) -> RevisionNotifier:
    notifier: RevisionNotifier = request.app.state.notifier
    return notifier


def _realigner(request: Request) -> Realigner | None:
    realigner: Realigner | None = getattr(request.app.state, "realigner", None)
    return realigner


def _snapshots(request: Request) -> SnapshotCache:
    snapshots: SnapshotCache = request.app.state.snapshots
    return snapshots


# The edge protocol ---------------------------------------------------------------------------


@router.post("/nodes", response_model=EdgeNode, summary="Register an edge node (edge token)")
def register(
    request: Request, actor: EdgeActor, protocol: Protocol, body: NodeRegister
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        node = edge_nodes.register(tx, _snapshots(request), body)
    return _node_answer(node, protocol)


@router.get(
    "/nodes/{node_id}/config",
    dependencies=[Depends(protocol_version)],
    response_model=ConfigPoll,
    summary="Long-poll the node's snapshot (edge token)",
)
async def poll_config(
    request: Request,
    actor: EdgeActor,
    node_id: str,
    after: Annotated[
        int, Query(ge=-1, description="the revision the node has; -1: answer at once")
    ] = -1,
    wait: Annotated[
        float, Query(ge=0, le=120, description="seconds to wait for a newer revision")
    ] = DEFAULT_WAIT_S,
    refs: Annotated[
        bool,
        Query(description="the snapshot as a manifest: zones and certificates by reference"),
    ] = False,
    have: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-f]{16}$",
            description="with refs: the hash of the manifest of revision `after` the node "
            "holds; the answer may then be a `delta` from it instead of a `manifest`",
        ),
    ] = None,
) -> Response:
    db = _db(request)
    notifier = _notifier(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        ticket = notifier.ticket()
        state = await run_in_threadpool(
            edge_poll.read_state, db, actor, node_id, after, _realigner(request)
        )
        remaining = deadline - loop.time()
        if state.revision > after or state.purges or remaining <= 0 or notifier.closed:
            break  # closed: the server stops; answer what we have, the agent polls again
        await notifier.wait(ticket, remaining)
    body = await run_in_threadpool(
        edge_poll.answer, db, _snapshots(request), actor, state, after, refs, have
    )
    return Response(content=body, media_type="application/json")


@router.post(
    "/nodes/{node_id}/objects",
    dependencies=[Depends(protocol_version)],
    response_model=ObjectsAnswer,
    summary="Fetch the zones and certificates a manifest names, by hash (edge token)",
)
def fetch_objects(
    request: Request, actor: EdgeActor, node_id: str, body: ObjectsRequest
) -> Response:
    content = edge_poll.objects(_db(request), _snapshots(request), actor, node_id, body.hashes)
    return Response(content=content, media_type="application/json")


@router.post("/nodes/{node_id}/ack", response_model=EdgeNode, summary="Acknowledge an apply")
def ack(
    request: Request, actor: EdgeActor, protocol: Protocol, node_id: str, body: Ack
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        node = edge_nodes.ack(tx, _snapshots(request), node_id, body)
    return _node_answer(node, protocol)


@router.get(
    "/bundles/{bundle_id}",
    dependencies=[Depends(protocol_version)],
    summary="Fetch a bundle's archive by its sha256 (edge token)",
    response_class=StreamingResponse,
)
def fetch_bundle(
    request: Request,
    actor: EdgeActor,
    bundle_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
) -> StreamingResponse:
    db = _db(request)
    with db.read(actor, PLATFORM_PROJECT) as tx:
        size = bundles.archive_size(tx, bundle_id)
        kept = bundles.kept_archive(tx, request.app.state.settings.home, bundle_id)
    return StreamingResponse(
        bundles.chunks(db, bundle_id) if kept is None else bundles.file_chunks(kept),
        media_type="application/x-tar",
        headers={"Content-Length": str(size), "ETag": f'"{bundle_id}"'},
    )


@router.post(
    "/nodes/{node_id}/heartbeat",
    status_code=204,
    summary="The node is alive",
    dependencies=[Depends(protocol_version)],
)
def heartbeat(request: Request, actor: EdgeActor, node_id: str, body: Heartbeat) -> Response:
    request.app.state.heartbeats.beat(actor, node_id, body)
    return Response(status_code=204)


@router.post(
    "/nodes/{node_id}/health",
    status_code=204,
    summary="Report backend health",
    dependencies=[Depends(protocol_version)],
)
def health(request: Request, actor: EdgeActor, node_id: str, body: HealthReport) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.report_health(tx, node_id, body)
    return Response(status_code=204)


@router.post(
    "/nodes/{node_id}/purges/{purge_id}",
    status_code=204,
    summary="Acknowledge a purge",
    dependencies=[Depends(protocol_version)],
)
def purge_done(
    request: Request, actor: EdgeActor, node_id: str, purge_id: str, body: PurgeAck
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.ack_purge(tx, node_id, purge_id, body)
    return Response(status_code=204)


@router.post(
    "/nodes/{node_id}/analytics",
    status_code=204,
    summary="Report traffic per minute",
    dependencies=[Depends(protocol_version)],
)
def analytics(request: Request, actor: EdgeActor, node_id: str, body: AnalyticsReport) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.store_analytics(tx, node_id, body)
    return Response(status_code=204)


@router.post(
    "/nodes/{node_id}/uptime",
    status_code=204,
    summary="Report uptime checks",
    dependencies=[Depends(protocol_version)],
)
def uptime_report(request: Request, actor: EdgeActor, node_id: str, body: UptimeReport) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        uptime.store(tx, node_id, body)
    return Response(status_code=204)


# For people ----------------------------------------------------------------------------------


@router.get("/nodes", response_model=list[EdgeNode], summary="Edge nodes and their propagation")
def list_nodes(ctx: GlobalCtx) -> list[EdgeNode]:
    with ctx.read(scoped=False) as tx:
        return edge_nodes.list_nodes(tx, ctx.snapshots)


@router.get("/nodes/{node_id}", response_model=EdgeNode)
def get_node(ctx: GlobalCtx, node_id: str) -> EdgeNode:
    with ctx.read(scoped=False) as tx:
        return edge_nodes.get_node(tx, ctx.snapshots, node_id)


@router.delete("/nodes/{node_id}", status_code=204, summary="Forget an edge node")
def delete_node(ctx: GlobalCtx, node_id: str) -> Response:
    with ctx.write(scoped=False) as tx:
        edge_nodes.delete_node(tx, node_id)
    return Response(status_code=204)
