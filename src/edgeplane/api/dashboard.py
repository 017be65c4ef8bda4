"""The dashboard: ``/`` answers its page, ``/ui/...`` its assets (``edgeplane/web`` in the
package: ES modules, CSS, the world map's data), all from the control plane itself.

Assets are read once, kept in memory with their gzip form, and answered with an ETag (a hash of
the content) and ``Cache-Control: no-cache``: a browser revalidates each (304 on loopback takes
about a millisecond) and never runs a stale module after an upgrade. The page's
Content-Security-Policy lets it load and connect to the control plane only.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from edgeplane.errors import NotFound

PACKAGE = "edgeplane"
FOLDER = "web"
PREFIX = "/ui/"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {".js": "text/javascript; charset=utf-8", ".json": "application/json"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def _asset(name: str, body: bytes) -> Asset:
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    media = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media.startswith("text/") and "charset" not in media:
        media += "; charset=utf-8"
    packed = gzip.compress(body, 9, mtime=0) if len(body) > 512 else None
    if packed is not None and len(packed) >= len(body):
        packed = None
    return Asset(body, packed, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    out: dict[str, Asset] = {}
    for item in folder.iterdir():
        name = prefix + item.name
        if item.is_dir():
            out.update(_walk(item, name + "/"))
        elif not item.name.startswith(".") and not item.name.endswith(".py"):
            out[name] = _asset(name, item.read_bytes())
    return out


def load() -> dict[str, Asset]:
    """Every file of the dashboard, by its path under ``/ui/``."""
    return _walk(files(PACKAGE) / FOLDER)


def _answer(request: Request, asset: Asset) -> Response:
    headers = dict(HEADERS, ETag=asset.etag, Vary="Accept-Encoding")
    if asset.etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in (request.headers.get("accept-encoding") or ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


class Assets:
    """The files, from the package (read once), or from ``EDGEPLANE_DASHBOARD_DIR`` read at
    every request (working on the dashboard: an edit shows at the next reload)."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = Path(folder) if folder else None
        self.files = {} if self.folder else load()

    def get(self, name: str) -> Asset | None:
        if self.folder is None:
            return self.files.get(name)
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder.resolve()) or not path.is_file():
            return None
        return _asset(name, path.read_bytes())


def install(app: FastAPI) -> None:
    assets = Assets(os.environ.get("EDGEPLANE_DASHBOARD_DIR"))

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        index = assets.get("index.html")
        assert index is not None, "the package's dashboard has no index.html"
        return _answer(request, index)

    @app.get(PREFIX + "{path:path}", include_in_schema=False)
    async def asset(request: Request, path: str) -> Response:
        found = assets.get(path)
        if found is None or path == "index.html":
            raise NotFound(f"no such dashboard file: {PREFIX}{path}")
        return _answer(request, found)
