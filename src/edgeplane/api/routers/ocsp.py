"""The internal CA's OCSP responder (RFC 6960), unauthenticated like any CA's: ``POST /ocsp``
with an ``application/ocsp-request`` body, or ``GET /ocsp/<base64 of the request>``. Internal
certificates name it in their Authority Information Access (the control plane's public URL);
the control plane fetches their staples from it, and any client may ask."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from edgeplane.api import problems
from edgeplane.certificates import ocsp_responder, serials
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow

router = APIRouter(tags=["certificates"])

PATH = "/ocsp"
MEDIA_TYPE = "application/ocsp-response"
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": "a DER OCSP response"},
    400: {"description": "not a DER OCSP request for one certificate"},
}


def _answer(request: Request, der: bytes) -> Response:
    db: Database = request.app.state.db
    try:
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            ca = InternalCA.load(tx.session, tx.secrets)
            body = ocsp_responder.respond(
                der,
                ca.signers() if ca is not None else [],
                lambda serial: serials.lookup(tx.session, serial),
                utcnow(),
            )
    except ocsp_responder.MalformedRequest as exc:
        return problems.problem_response(problems.http_problem(400, str(exc), field="body"))
    max_age = int(ocsp_responder.VALIDITY.total_seconds() // 2)
    return Response(body, media_type=MEDIA_TYPE, headers={"Cache-Control": f"max-age={max_age}"})


@router.post(PATH, response_class=Response, responses=_RESPONSES)
async def ocsp_post(request: Request) -> Response:
    """The status of an internal certificate (body: a DER OCSP request)."""
    body = await request.body()
    return await run_in_threadpool(_answer, request, body)


@router.get(PATH + "/{encoded:path}", response_class=Response, responses=_RESPONSES)
def ocsp_get(request: Request, encoded: str) -> Response:
    """The status of an internal certificate (the path: the base64 of a DER OCSP request)."""
    text = unquote(encoded).strip().replace("-", "+").replace("_", "/")
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return problems.problem_response(
            problems.http_problem(
                400, "the path is not the base64 of an OCSP request", field="path"
            )
        )
    return _answer(request, der)
