"""The edge protocol (edge tokens) and the edge nodes as people see them (API tokens)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from edgeplane.api.deps import EdgeActor, GlobalCtx
from edgeplane.api.notify import RevisionNotifier
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
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database

router = APIRouter(prefix="/api/v1/edge", tags=["edge"])

DEFAULT_WAIT_S = 25.0


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _notifier(request: Request) -> RevisionNotifier:
    notifier: RevisionNotifier = request.app.state.notifier
    return notifier


def _snapshots(request: Request) -> SnapshotCache:
    snapshots: SnapshotCache = request.app.state.snapshots
    return snapshots


# The edge protocol ---------------------------------------------------------------------------


@router.post("/nodes", response_model=EdgeNode, summary="Register an edge node (edge token)")
def register(request: Request, actor: EdgeActor, body: NodeRegister) -> EdgeNode:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        return edge_nodes.register(tx, _snapshots(request), body)


@router.get(
    "/nodes/{node_id}/config",
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
        state = await run_in_threadpool(edge_poll.read_state, db, actor, node_id)
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
    response_model=ObjectsAnswer,
    summary="Fetch the zones and certificates a manifest names, by hash (edge token)",
)
def fetch_objects(
    request: Request, actor: EdgeActor, node_id: str, body: ObjectsRequest
) -> Response:
    content = edge_poll.objects(_db(request), _snapshots(request), actor, node_id, body.hashes)
    return Response(content=content, media_type="application/json")


@router.post("/nodes/{node_id}/ack", response_model=EdgeNode, summary="Acknowledge an apply")
def ack(request: Request, actor: EdgeActor, node_id: str, body: Ack) -> EdgeNode:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        return edge_nodes.ack(tx, _snapshots(request), node_id, body)


@router.get(
    "/bundles/{bundle_id}",
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


@router.post("/nodes/{node_id}/heartbeat", status_code=204, summary="The node is alive")
def heartbeat(request: Request, actor: EdgeActor, node_id: str, body: Heartbeat) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.heartbeat(tx, node_id, body, request.app.state.settings)
    return Response(status_code=204)


@router.post("/nodes/{node_id}/health", status_code=204, summary="Report backend health")
def health(request: Request, actor: EdgeActor, node_id: str, body: HealthReport) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.report_health(tx, node_id, body)
    return Response(status_code=204)


@router.post("/nodes/{node_id}/purges/{purge_id}", status_code=204, summary="Acknowledge a purge")
def purge_done(
    request: Request, actor: EdgeActor, node_id: str, purge_id: str, body: PurgeAck
) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.ack_purge(tx, node_id, purge_id, body)
    return Response(status_code=204)


@router.post("/nodes/{node_id}/analytics", status_code=204, summary="Report traffic per minute")
def analytics(request: Request, actor: EdgeActor, node_id: str, body: AnalyticsReport) -> Response:
    with _db(request).transaction(actor, PLATFORM_PROJECT) as tx:
        edge_nodes.store_analytics(tx, node_id, body)
    return Response(status_code=204)


@router.post("/nodes/{node_id}/uptime", status_code=204, summary="Report uptime checks")
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
