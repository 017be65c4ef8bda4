"""Static bundles in nginx (pure): the files of a site's edge deployment in front of its origin.

``location /`` sends a request to ``$edge_loc``: ``@bundle`` for a site with a bundle (unless
the path is one of its ``origin_paths``), else the cache rules' location as before.

``@bundle`` serves the file from ``<bundle root>/<sha256>`` (the root is ``<prefix>/bundles``
unless told otherwise): its precompressed ``.br`` / ``.gz`` variant when the client accepts
one, ``index.html`` for a directory. Else ``$bundle_fallback``: for a single-page app's path
without a file extension, the app's ``/index.html`` (``@bundle_spa``); else the site's origin
location when it has one; else a 404.

Fingerprinted names (``app.3f2a9c1b.js``, as the manifest marks them ``immutable``) are cached
for a year as immutable; everything else must be revalidated. Which paths are immutable comes
from each bundle's manifest, in a map file the node writes beside the bundle when it unpacks
it (``<sha256>.immutable``, see ``immutable_map``).
Responses from a bundle carry ``X-Cache-Status: STATIC`` and ``X-Edge-Deployment`` and are
logged with ``"source":"bundle"``.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeplane.node.nginx.syntax import block, lit, map_block
from edgeplane.protocol.config import BundleSpec, EdgeConfig, SiteSpec

BUNDLE_LOC = "@bundle"
MISSING_LOC = "@bundle404"
SPA_LOC = "@bundle_spa"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=0, must-revalidate"

# Types nginx gives bundle files (by extension); anything else is application/octet-stream.
MIME_TYPES: dict[str, tuple[str, ...]] = {
    "text/html": ("html", "htm"),
    "text/css": ("css",),
    "text/plain": ("txt",),
    "text/xml": ("xml",),
    "text/csv": ("csv",),
    "text/markdown": ("md",),
    "application/javascript": ("js", "mjs", "cjs"),
    "application/json": ("json", "map"),
    "application/manifest+json": ("webmanifest",),
    "application/wasm": ("wasm",),
    "application/pdf": ("pdf",),
    "application/zip": ("zip",),
    "application/rss+xml": ("rss",),
    "application/atom+xml": ("atom",),
    "image/svg+xml": ("svg", "svgz"),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "image/avif": ("avif",),
    "image/x-icon": ("ico",),
    "font/woff": ("woff",),
    "font/woff2": ("woff2",),
    "font/ttf": ("ttf",),
    "font/otf": ("otf",),
    "application/vnd.ms-fontobject": ("eot",),
    "video/mp4": ("mp4",),
    "video/webm": ("webm",),
    "audio/mpeg": ("mp3",),
    "audio/ogg": ("ogg",),
}


def mime_types() -> str:
    lines = [f"{kind} {' '.join(exts)};" for kind, exts in sorted(MIME_TYPES.items())]
    return block("types", lines)


def bundle_dir(root: Path, bundle: str) -> str:
    return f"{root}/{bundle}"


def immutable_file(root: Path, bundle: str) -> str:
    return f"{root}/{bundle}.immutable"


_MAP_SAFE = re.compile(r'^[^\x00-\x20"$\\{};]+$')


def immutable_map(bundle: str, manifest: dict[str, object]) -> str:
    """The map entries (``"<sha256>|/path" 1;``) of the bundle's immutable files: the file
    the node writes beside the bundle. Paths nginx could not quote are left out (they are
    revalidated instead: the safe side)."""
    files = manifest.get("files")
    lines = []
    if isinstance(files, dict):
        for path, entry in sorted(files.items()):
            if isinstance(entry, dict) and entry.get("immutable") and _MAP_SAFE.match(path):
                lines.append(f'"{bundle}|/{path}" 1;\n')
    return "".join(lines)


def _site_key(site: str) -> str:
    return re.escape(site).replace('"', "")


def bundle_maps(
    config: EdgeConfig,
    root: Path,
    sites: list[SiteSpec],
    with_origin: set[str],
    edge_loc: str = "$edge_loc",
) -> str:
    """The maps that route a site's requests to its bundle (empty without bundles);
    ``edge_loc``: the head of the chain (``$edge_loc_static`` under functions)."""
    served = {s.id for s in sites}
    bundles = [b for b in config.bundles if b.site in served]
    if not bundles:
        return map_block("$site_id", edge_loc, [], default="$rule_loc")
    text = "# edge deployments: static bundles in front of the origin\n"
    text += map_block(
        "$site_id", "$bundle_root", [(b.site, lit(bundle_dir(root, b.hash))) for b in bundles]
    )
    text += map_block(
        "$site_id", "$bundle_deployment", [(b.site, lit(b.deployment)) for b in bundles]
    )
    text += map_block(
        "$site_id", "$bundle_loc", [(b.site, BUNDLE_LOC) for b in bundles], default="$rule_loc"
    )
    text += _origin_paths(bundles, edge_loc)
    text += map_block(
        "$site_id",
        "$bundle_miss",
        [(b.site, "$rule_loc") for b in bundles if b.site in with_origin],
        default=MISSING_LOC,
    )
    text += _spa(bundles)
    text += map_block("$site_id", "$bundle_hash", [(b.site, lit(b.hash)) for b in bundles])
    includes = sorted({f"include {immutable_file(root, b.hash)};" for b in bundles})
    text += block('map "$bundle_hash|$uri" $bundle_immutable', ["default 0;", *includes])
    text += map_block(
        "$bundle_immutable", "$bundle_cache_control", [("1", lit(IMMUTABLE))],
        default=lit(REVALIDATE),
    )  # fmt: skip
    return text


def _origin_paths(bundles: list[BundleSpec], edge_loc: str) -> str:
    lines = ["default $bundle_loc;"]
    for b in bundles:
        for prefix in b.origin_paths:
            lines.append(f'"~^{_site_key(b.site)}\\|{re.escape(prefix)}" $rule_loc;')
    return block(f'map "$site_id|$uri" {edge_loc}', lines)


def _spa(bundles: list[BundleSpec]) -> str:
    lines = ["default $bundle_miss;"]
    for b in bundles:
        if b.spa:
            # A path whose last segment has no dot (a client-side route) gets the app.
            lines.append(f'"~^{_site_key(b.site)}\\|(?:.*/)?[^/.]*$" {SPA_LOC};')
    return block('map "$site_id|$uri" $bundle_fallback', lines)


def bundle_locations(config: EdgeConfig, brotli: bool) -> str:
    """``@bundle`` and ``@bundle404`` (only when the snapshot has bundles)."""
    if not config.bundles:
        return ""
    lines = [
        "include headers.conf;",
        "add_header Cache-Control $bundle_cache_control always;",
        "add_header X-Edge-Deployment $bundle_deployment always;",
        "set $edge_source bundle;",
        "root $bundle_root;",
        "include mime.types;",
        "charset utf-8;",
        "gzip_static on;",
        "gzip_vary on;",
        "sendfile on;",  # files of any size from disk (off elsewhere: see render.base.conf)
        "tcp_nopush on;",
    ]
    if brotli:
        lines.append("brotli_static on;")
    # A client-side route gets the app's index here, not by an internal redirect to
    # /index.html (which would go through location / and its error_page a second time).
    spa = [*lines, "try_files /index.html =404;"]
    lines.append("try_files $uri $uri/index.html $bundle_fallback;")
    return (
        block(f"location {BUNDLE_LOC}", lines)
        + block(f"location {SPA_LOC}", spa)
        + block(
            f"location {MISSING_LOC}",
            [
                "include headers.conf;",
                "add_header X-Edge-Deployment $bundle_deployment always;",
                "default_type text/plain;",
                'return 404 "not found\\n";',
            ],
        )
    )
