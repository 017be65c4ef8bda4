"""The API's documentation pages, served with every asset they load from the control plane
itself, so that they work offline (FastAPI's own pages load theirs from a public CDN).

- ``/docs``: Swagger UI; ``/docs/oauth2-redirect`` its OAuth2 helper page;
- ``/redoc``: ReDoc, without Google Fonts;
- ``/docs/assets/``: the JavaScript, CSS and favicon, from the ``fastapi-offline`` package,
  which ships Swagger UI 5 (it renders OpenAPI 3.1, which FastAPI writes) and ReDoc 2.

Swagger UI's online validator badge is off: it would send the document to a public service.
The pages carry a Content-Security-Policy that lets them load from the control plane only: ReDoc
2 shows an image from its vendor's CDN in its sidebar's footer (not an option it has), which the
browser then never asks for.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
ASSETS_PACKAGE = "fastapi_offline"
# Inline scripts and styles: FastAPI's page starts Swagger UI with one, both inject styles.
# Blob workers: ReDoc's search.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def assets_directory() -> str:
    """Where the installed ``fastapi-offline`` keeps the files (its ``static`` folder)."""
    return str(files(ASSETS_PACKAGE) / "static")


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install(app: FastAPI) -> None:
    """Add the pages and their assets to ``app`` (created with ``docs_url=None`` and
    ``redoc_url=None``, so that FastAPI does not add its CDN-based ones)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(directory=assets_directory()), name="docs-assets")

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        page = get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=base + OAUTH2_REDIRECT_URL,
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
        return _local_only(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _local_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        page = get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - API",
            redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _local_only(page)
