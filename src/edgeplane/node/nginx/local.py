"""Node-local facts the renderer needs that are not in the snapshot."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WafEngine:
    """ModSecurity and the Core Rule Set as installed on this node (``render_waf``)."""

    modules: tuple[str, ...]  # the .so files to load, in order (NDK before ModSecurity)
    crs_rules: str  # the directory of the CRS's ``*.conf`` rule files


@dataclass(frozen=True)
class NodeLocal:
    """Where and how this node's nginx runs."""

    prefix: Path  # the node's nginx prefix (absolute)
    node_name: str  # X-Served-By
    http_port: int
    https_port: int | None = None
    bind: str = "127.0.0.1"
    user: str | None = None  # nginx `user`; None: "www-data" when running as root, else none
    workers: int = 2
    brotli_module: str | None = None  # the brotli_static module's .so, when installed
    waf: WafEngine | None = None  # ModSecurity and the CRS, when installed
    # nginx's njs module (``find_js_module``): with it, caching locations reach the origin
    # through the origin hop (``render_hop``), which makes the cache follow RFC 9111
    js_module: str | None = None
    bundle_dir: Path | None = None  # where static bundles are unpacked; None: prefix/bundles
    # Certificates stapled at most (render_stapling): each is a server block of its own, about
    # 0.4 MiB of nginx memory and 4-5 ms of every reload here (bench/stapling.py).
    max_stapled: int = 100

    @property
    def bundle_root(self) -> Path:
        return self.bundle_dir if self.bundle_dir is not None else self.prefix / "bundles"

    @property
    def worker_user(self) -> str | None:
        """The user nginx workers run as (None: the agent's own user)."""
        if self.user is not None:
            return self.user
        return "www-data" if os.geteuid() == 0 else None

    @property
    def worker_group(self) -> int | None:
        """The group id of the user nginx workers run as (None: the agent's own user, or a user
        this machine does not know, whom nginx itself then refuses)."""
        user = self.worker_user
        if user is None:
            return None
        try:
            return pwd.getpwnam(user).pw_gid
        except KeyError:
            return None


@dataclass(frozen=True)
class LocalHealth:
    """What this node's active health checks decided."""

    down: frozenset[tuple[str, str]] = frozenset()  # (pool id, backend key) out of rotation
    weights: Mapping[tuple[str, str], int] = field(default_factory=dict)  # "dynamic" weights


JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")


def find_js_module() -> str | None:
    """nginx's njs module on this machine, if installed (Debian's ``libnginx-mod-http-js``)."""
    return str(JS_MODULE) if JS_MODULE.is_file() else None


BROTLI_MODULE = Path("/usr/lib/nginx/modules/ngx_http_brotli_static_module.so")


def find_brotli_module() -> str | None:
    """The brotli_static module of this machine's nginx, if installed (Debian's package)."""
    return str(BROTLI_MODULE) if BROTLI_MODULE.is_file() else None


MODULES = Path("/usr/lib/nginx/modules")
NDK_MODULE = MODULES / "ndk_http_module.so"
MODSECURITY_MODULE = MODULES / "ngx_http_modsecurity_module.so"
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")


def find_waf_engine() -> WafEngine | None:
    """ModSecurity-nginx (and the NDK it needs) and the OWASP CRS, if installed (Debian's
    ``libnginx-mod-http-modsecurity`` and ``modsecurity-crs``)."""
    if not (NDK_MODULE.is_file() and MODSECURITY_MODULE.is_file() and CRS_RULES.is_dir()):
        return None
    return WafEngine((str(NDK_MODULE), str(MODSECURITY_MODULE)), str(CRS_RULES))
