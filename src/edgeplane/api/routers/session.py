"""Dashboard sign-in (``/api/v1/session``) and the logins an operator creates
(``/api/v1/logins``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response

from edgeplane.api.deps import GlobalCtx
from edgeplane.errors import Unauthenticated
from edgeplane.model.sessions import Login, LoginCreate, SessionCreate, SessionInfo
from edgeplane.services import logins, sessions
from edgeplane.services.sign_in_throttle import SignInThrottle

router = APIRouter(prefix="/api/v1", tags=["access"])
SessionCookie = Annotated[str | None, Cookie(alias=sessions.COOKIE, include_in_schema=False)]


def _set_cookie(request: Request, response: Response, secret: str, max_age: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        secret,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _signed_out() -> Response:
    """204, clearing the session cookie."""
    out = Response(status_code=204)
    out.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return out


@router.post(
    "/session",
    response_model=SessionInfo,
    status_code=201,
    responses={
        401: {"description": "unknown token, login or password"},
        403: {"description": "an edge or metrics token: it cannot sign in"},
        429: {"description": "too many failed sign-ins of this login or from this client"},
    },
)
def sign_in(request: Request, response: Response, body: SessionCreate) -> SessionInfo:
    """Sign in (the dashboard): sets the session cookie (HttpOnly, SameSite=Strict) and answers
    the session, whose ``csrf_token`` every write made with the cookie carries as
    ``X-CSRF-Token``."""
    settings = request.app.state.settings
    if body.login is None:  # a token: 240 random bits, nothing to gain from guessing
        secret, session = sessions.sign_in(request.app.state.db, body, settings.session_ttl_s)
    else:
        throttles: tuple[SignInThrottle, SignInThrottle] = request.app.state.sign_in_throttles
        keys = (body.login, request.client.host if request.client else "-")
        for throttle, key in zip(throttles, keys, strict=True):
            throttle.check(key)
        try:
            secret, session = sessions.sign_in(request.app.state.db, body, settings.session_ttl_s)
        except Unauthenticated:
            for throttle, key in zip(throttles, keys, strict=True):
                throttle.failed(key)
            raise
        throttles[0].succeeded(keys[0])
    _set_cookie(request, response, secret, int(settings.session_ttl_s))
    return session.info


@router.get(
    "/session",
    response_model=SessionInfo,
    responses={204: {"description": "not signed in (no cookie, or its session has ended)"}},
)
def current_session(request: Request, cookie: SessionCookie = None) -> Response | SessionInfo:
    """The session of the request's cookie; 204 when there is none (the dashboard then shows
    its sign-in form), and the cookie of an ended session is cleared."""
    if cookie:
        try:
            return sessions.authenticate(request.app.state.db, cookie).info
        except Unauthenticated:
            return _signed_out()
    return Response(status_code=204)


@router.delete(
    "/session",
    status_code=204,
    responses={403: {"description": "the session's X-CSRF-Token is missing or wrong"}},
)
def sign_out(request: Request, response: Response, cookie: SessionCookie = None) -> Response:
    """Sign out: ends the session and clears its cookie (needs the session's CSRF token)."""
    if cookie:
        session = sessions.authenticate(request.app.state.db, cookie)
        sessions.check_csrf(session, "DELETE", request.headers.get(sessions.CSRF_HEADER))
        sessions.sign_out(request.app.state.db, cookie)
    return _signed_out()


@router.get("/logins", response_model=list[Login])
def list_logins(ctx: GlobalCtx) -> list[Login]:
    with ctx.read(scoped=False) as tx:
        return logins.list_logins(tx)


@router.post("/logins", response_model=Login, status_code=201)
def create_login(ctx: GlobalCtx, body: LoginCreate) -> Login:
    """A login of the dashboard: a name, a password (10 characters at least) and roles, as a
    token's."""
    with ctx.write(scoped=False) as tx:
        return logins.create_login(tx, body)


@router.delete("/logins/{name}", status_code=204)
def delete_login(ctx: GlobalCtx, name: str) -> Response:
    with ctx.write(scoped=False) as tx:
        logins.delete_login(tx, name)
    return Response(status_code=204)
