"""Edge functions: versioned JavaScript request handlers of the project, run by the edge nodes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from edgeplane.api.deps import Ctx
from edgeplane.api.problems import refuses
from edgeplane.model.common import Page
from edgeplane.model.functions import (
    NAME_PATTERN,
    CodeCheck,
    CodeRequest,
    EdgeFunction,
    FunctionDeploy,
    FunctionDeployed,
    FunctionVersion,
    FunctionVersionDetail,
)
from edgeplane.services import function_views, functions

router = APIRouter(prefix="/api/v1/infrastructure/functions", tags=["functions"])

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="page size, 100 by default")]
VersionNo = Annotated[int, Path(ge=1, le=2_000_000_000, description="a version number")]
# Checked by the services (422 naming ``name`` / ``cursor``); stated here for the schema.
Name = Annotated[
    str,
    Path(description="the function's name", json_schema_extra={"pattern": NAME_PATTERN}),
]
VersionCursor = Annotated[
    str | None,
    Query(
        description="next_cursor of the previous page (a version number)",
        json_schema_extra={"pattern": function_views.CURSOR_PATTERN},
    ),
]


@router.get("", response_model=Page[EdgeFunction])
def list_functions(ctx: Ctx, cursor: Cursor = None, limit: Limit = None) -> Page[EdgeFunction]:
    """The project's functions by name, each with its current version."""
    with ctx.read() as tx:
        return function_views.list_functions(tx, cursor=cursor, limit=limit)


@router.post("/check", response_model=CodeCheck)
def check_code(ctx: Ctx, body: CodeRequest) -> CodeCheck:
    """Whether the code compiles as a function module: 200 either way, ``ok`` says (with the
    line and column of the error)."""
    with ctx.read() as tx:
        return functions.check(tx, body)


@router.api_route("/check", methods=["GET", "PUT", "DELETE"], include_in_schema=False)
@refuses
def _check_other_methods() -> None:
    """``check`` is an action, not a function's name (a function cannot be named so)."""
    raise HTTPException(405)


@router.put(
    "/{name}",
    response_model=FunctionDeployed,
    status_code=202,
    responses={200: {"model": FunctionDeployed, "description": "unchanged: the current version"}},
    summary="Deploy a function (a new version)",
)
def deploy(ctx: Ctx, response: Response, name: Name, body: FunctionDeploy) -> FunctionDeployed:
    """A new version, rolled out to one node first, then the rest: 202. The fields left out
    are the current version's (``routes`` is required the first time); the same content as
    the current version answers it with 200 and makes nothing."""
    with ctx.write() as tx:
        out = functions.deploy(tx, name, body)
    if not out.created:
        response.status_code = 200
    return out


@router.get("/{name}", response_model=EdgeFunction)
def get_function(ctx: Ctx, name: Name) -> EdgeFunction:
    """The function and its current version (the one rolling out, else the active one) with
    its progress per region."""
    with ctx.read() as tx:
        return function_views.get(tx, name)


@router.delete("/{name}", status_code=204, response_class=Response)
def delete_function(ctx: Ctx, name: Name) -> Response:
    """The function and all its versions; the nodes drop it with their next snapshot."""
    with ctx.write() as tx:
        functions.delete(tx, name)
    return Response(status_code=204)


@router.get("/{name}/versions", response_model=Page[FunctionVersion])
def list_versions(
    ctx: Ctx, name: Name, cursor: VersionCursor = None, limit: Limit = None
) -> Page[FunctionVersion]:
    """The function's versions, newest first (secrets by name only)."""
    with ctx.read() as tx:
        return function_views.list_versions(tx, name, cursor=cursor, limit=limit)


@router.get("/{name}/versions/{version}", response_model=FunctionVersionDetail)
def get_version(ctx: Ctx, name: Name, version: VersionNo) -> FunctionVersionDetail:
    """One version with its code and its progress per region."""
    with ctx.read() as tx:
        return function_views.get_version(tx, name, version)


@router.post(
    "/{name}/versions/{version}/activate",
    response_model=FunctionDeployed,
    status_code=202,
    summary="Make an earlier version current again, everywhere at once",
)
def activate(ctx: Ctx, name: Name, version: VersionNo) -> FunctionDeployed:
    with ctx.write() as tx:
        return functions.activate(tx, name, version)


@router.post(
    "/{name}/rollback",
    response_model=FunctionDeployed,
    status_code=202,
    summary="Activate the version that was active before the current one",
)
def rollback(ctx: Ctx, name: Name) -> FunctionDeployed:
    with ctx.write() as tx:
        return functions.rollback(tx, name)
