"""Edge functions: versioned JavaScript request handlers of a project, bound to routes and run
by every function-capable edge node (``edgeplane.node.functions``).

A deploy (``FunctionDeploy``, the body of ``PUT /functions/{name}``) makes a new **version**
of the function: its code, the routes it answers (``HOST/PATH`` with an optional trailing
``*``, and methods), its environment (plain ``env`` and write-only ``secrets``), its limits
and an optional check path. What a deploy leaves out is inherited from the current version
(secrets too). A version is immutable and rolls out as edge deployments do: ``canary`` (one
node) → ``rolling`` → ``active``, or ``failed`` / ``cancelled``; the one it replaces becomes
``superseded``. Secrets are never answered: a version names them only.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edgeplane.model.common import Input, Int, Output, Text

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
Status = Literal["canary", "rolling", "active", "superseded", "failed", "cancelled"]
LIVE_STATUSES = ("canary", "rolling", "active")

MAX_CODE_BYTES = 1 << 20
MAX_ROUTES = 50
MAX_PATTERN = 512
MAX_VARS = 64
MAX_VALUE_BYTES = 5 * 1024
MAX_MESSAGE = 200

_VAR = re.compile(VAR_PATTERN)
_HOST = re.compile(r"^(\*|[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?)$")
_BAD_PATH = re.compile(r"[?#\s\x00-\x1f\x7f-\x9f]")

FunctionName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="lower-case letters, digits and '-', 1-63 characters, starting and ending "
        "with a letter or digit",
        examples=["geo-redirect"],
    ),
]


def split_pattern(pattern: str) -> tuple[str, str]:
    """``(host, path)`` of a route pattern ``HOST/PATH``; ValueError saying why not."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"at most {MAX_PATTERN} characters")
    host, sep, rest = pattern.partition("/")
    if not sep or not host or (host != "*" and "." not in host.strip(".")):
        raise ValueError(f"{pattern!r} must be HOST/PATH, e.g. shop.example.com/api/* or */api/*")
    path = "/" + rest
    host = host.lower().removesuffix(".") if host != "*" else host
    if not _HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name (a domain of the project, or *)")
    bad = _BAD_PATH.search(path)
    if bad is not None:
        raise ValueError(
            f"the path must not contain ?, #, white space or control characters "
            f"({bad.group()!r} at {len(host) + bad.start()})"
        )
    if "*" in path[:-1]:
        raise ValueError("'*' is allowed only as the last character (a prefix match)")
    return host, path


def check_path_of(value: str) -> str:
    """A check path: ``/`` then no ``?``/``#``/white space/control characters (query strings
    are not sent); ValueError otherwise."""
    if not value.startswith("/"):
        raise ValueError("must be a path starting with /")
    if len(value) > MAX_PATTERN:
        raise ValueError(f"at most {MAX_PATTERN} characters")
    if _BAD_PATH.search(value):
        raise ValueError("must not contain ?, #, white space or control characters")
    return value


def _code(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value.encode()) > MAX_CODE_BYTES:
        raise ValueError(f"at most {MAX_CODE_BYTES} bytes (1 MiB) of UTF-8")
    return value


def _methods(values: list[str]) -> list[str]:
    wanted = {v.strip().upper() for v in values}
    unknown = sorted(wanted - set(METHODS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not one of {', '.join(METHODS)}")
    return [m for m in METHODS if m in wanted]


def _var_names(values: dict[str, object] | None) -> None:
    for key in values or {}:
        if not _VAR.fullmatch(key):
            raise ValueError(
                f"{key[:70]!r} is not a variable name (a letter or _, then letters, digits "
                "or _, at most 64)"
            )


def _value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ValueError(f"at most {MAX_VALUE_BYTES} bytes")
    return value


class FunctionRoute(Input):
    """Where a function answers: ``HOST/PATH`` (``HOST``: a domain of the project or ``*``
    for all of them; ``PATH`` exact, or a prefix with a trailing ``*``) and methods (none:
    every method)."""

    pattern: str = Field(
        description="HOST/PATH: shop.example.com/api/* or */hello; '*' only last",
        examples=["*/api/*"],
    )
    methods: list[str] = Field(
        default_factory=list,
        max_length=len(METHODS) * 2,
        description=f"a subset of {', '.join(METHODS)}; none: every method",
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        host, path = split_pattern(value)
        return f"{host}{path}"

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return _methods(value)

    @property
    def host(self) -> str:
        return split_pattern(self.pattern)[0]

    @property
    def path(self) -> str:
        return split_pattern(self.pattern)[1]


class FunctionLimits(Input):
    timeout_ms: Int = Field(
        5000, ge=1, le=60_000, description="wall-clock time of one invocation, ms"
    )
    memory_mb: Int = Field(128, ge=8, le=1024, description="the isolate's heap limit, MiB")


class FunctionDeploy(Input):
    """A new version of a function; the fields left out keep the current version's values
    (``routes`` is required on the first deploy). ``secrets``: a value of null removes that
    secret; ``check_path: ""`` removes the check path."""

    code: str = Field(
        min_length=1,
        max_length=MAX_CODE_BYTES,
        description="an ES module: export default { async fetch(request, env, ctx) {...} }; "
        "at most 1 MiB of UTF-8",
    )
    routes: list[FunctionRoute] | None = Field(None, min_length=1, max_length=MAX_ROUTES)
    env: dict[str, str] | None = Field(
        None,
        max_length=MAX_VARS,
        description="plain variables, shown by the API (values at most 5 KiB of UTF-8)",
        json_schema_extra={"propertyNames": {"pattern": VAR_PATTERN}},
    )
    secrets: dict[str, str | None] | None = Field(
        None,
        max_length=MAX_VARS,
        description="write-only variables (kept across deploys; null removes one)",
        json_schema_extra={"propertyNames": {"pattern": VAR_PATTERN}},
    )
    limits: FunctionLimits | None = None
    check_path: str | None = Field(
        None, description="a path each node requests after loading the version; '' removes it"
    )
    message: Text | None = Field(None, max_length=MAX_MESSAGE)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return _code(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        _var_names(value)  # type: ignore[arg-type]
        return None if value is None else {k: _value(v) for k, v in value.items()}

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        _var_names(value)  # type: ignore[arg-type]
        if value is None:
            return None
        return {k: None if v is None else _value(v) for k, v in value.items()}

    @field_validator("check_path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return value if value is None or value == "" else check_path_of(value)


class CodeRequest(Input):
    code: str = Field(min_length=1, max_length=MAX_CODE_BYTES)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return _code(value)


class CodeCheck(Output):
    """Whether the code compiles as a function module (``line`` and ``column`` of the error,
    when the engine says them)."""

    ok: bool
    line: int | None = None
    column: int | None = None
    message: str = ""


class FunctionRegionProgress(Output):
    region: str
    nodes: int  # live function-capable nodes of the region
    serving: int  # of which serve this version
    failed: int = 0
    state: Literal["pending", "canary", "rolling", "active", "failed", "offline", "done"]


class FunctionVersion(Output):
    id: str
    name: str
    version: int
    sha256: str
    size: int
    routes: list[FunctionRoute]
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)  # names only, sorted
    limits: FunctionLimits
    check_path: str | None = None
    message: str | None = None
    status: Status
    canary_node: str | None = None
    error: str | None = None
    reactivates: str | None = None
    regions: list[str] = Field(default_factory=list)
    progress: list[FunctionRegionProgress] = Field(default_factory=list)
    created_at: datetime
    created_by: str = ""
    activated_at: datetime | None = None
    finished_at: datetime | None = None


class FunctionVersionDetail(FunctionVersion):
    code: str


class EdgeFunction(Output):
    name: str
    current: FunctionVersion | None = None  # the version rolling out, else the active one
    active_version: int | None = None
    versions: int = 0
    created_at: datetime
    updated_at: datetime


class FunctionDeployed(Output):
    function: EdgeFunction
    version: FunctionVersion
    created: bool  # False: the content equals the current version's (nothing made)
