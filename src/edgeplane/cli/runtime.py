"""Running one command: the client, the request, the output and the exit code.

Exit codes: 0 success, 1 an error the request caused (4xx: invalid input, not found, conflict,
forbidden, no token), 2 a usage error (Typer's own), 3 the control plane failed or could not
be reached (5xx).

The SDK client (and in embedded mode the whole control plane) is imported only when a command
talks to it, so that ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from edgeplane.cli import output
from edgeplane.cli.output import Column, Doc
from edgeplane.errors import EdgeplaneError

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

T = TypeVar("T")
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
BASE = "/api/v1/infrastructure"


@dataclass(frozen=True)
class Globals:
    """The root options; ``None`` means "from the environment", as the SDK does."""

    project: str
    url: str | None = None
    token: str | None = None

    def client(self, *, scoped: bool) -> Client:
        from edgeplane.sdk.client import Client
        from edgeplane.settings import Settings

        settings = Settings.from_env(url=self.url, token=self.token)
        return Client(settings, project=self.project if scoped else None)

    def check_state(self) -> None:
        """Embedded, a command works on a state directory that exists or that was named (--home,
        EDGEPLANE_HOME): it never creates ./.edgeplane by itself, where it would be a second,
        empty state beside a running control plane's. ``edgeplane init`` creates one."""
        from edgeplane.settings import Settings

        settings = Settings.from_env(url=self.url, token=self.token)
        if settings.url or settings.database_url or os.environ.get("EDGEPLANE_HOME"):
            return
        if not settings.home.exists():
            fail(
                f"no Edgeplane state in {settings.home.resolve()}: to talk to a control plane, "
                "set EDGEPLANE_URL and EDGEPLANE_TOKEN (or --url and --token); to work on local "
                "state, give --home DIR (or EDGEPLANE_HOME), or create it with `edgeplane init`"
            )


def fail(message: str, code: int = 1) -> NoReturn:
    output.error(message)
    raise typer.Exit(code)


def call(ctx: typer.Context, fn: Callable[[Client], Awaitable[T]], *, scoped: bool = True) -> T:
    """Run ``fn`` with a client; an EdgeplaneError becomes a message and an exit code.

    ``scoped=False`` leaves the project out of the request (projects, tokens, whoami), so that
    a ``--project`` that does not exist yet does not get in the way.
    """
    globals_ = ctx.find_root().obj
    assert isinstance(globals_, Globals)
    globals_.check_state()

    async def run() -> T:
        client = globals_.client(scoped=scoped)
        try:
            return await fn(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except EdgeplaneError as exc:
        fail(exc.message, 1 if exc.status < 500 else 3)


def emit(
    doc: Any,
    as_json: bool,
    render: Callable[[Any], None],
    *,
    quiet: bool = False,
    key: str | Callable[[Any], Any] = "id",
) -> None:
    """The answer: JSON, the rendering for people, or with ``quiet`` only the new object's id
    (``key``: its field, or a function of the document) for scripts to capture."""
    if quiet:
        output.plain(str(output.pick(doc, key)))
    elif as_json:
        output.print_json(doc)
    else:
        render(doc)


def compact(**fields: Any) -> Doc:
    """The fields that were given (not None)."""
    return {k: v for k, v in fields.items() if v is not None}


# The shapes most commands take ------------------------------------------------------------


def request(
    ctx: typer.Context,
    as_json: bool,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: Mapping[str, Any] | None = None,
    title: str | None = None,
    scoped: bool = True,
    render: Callable[[Any], None] | None = None,
    quiet: bool = False,
    key: str | Callable[[Any], Any] = "id",
) -> None:
    """One request; its answer printed as JSON or as a key/value table (with ``quiet``: only
    the new object's ``key``)."""
    doc = call(
        ctx,
        lambda c: c.request(method, path, json=body, params=dict(params or {})),
        scoped=scoped,
    )
    emit(doc, as_json, render or (lambda d: output.details(d, title=title)), quiet=quiet, key=key)


def listing(
    ctx: typer.Context,
    as_json: bool,
    path: str,
    columns: Sequence[Column],
    *,
    title: str,
    params: Mapping[str, Any] | None = None,
    all_pages: bool = False,
    scoped: bool = True,
) -> None:
    """A list (or one page of it, or every page with ``all_pages``) as JSON or a table."""
    query = dict(params or {})

    async def fetch(c: Client) -> Any:
        doc = await c.request("GET", path, params=query)
        if not isinstance(doc, dict) or not all_pages:
            return doc
        items = list(doc["items"])
        while doc.get("next_cursor"):
            doc = await c.request("GET", path, params={**query, "cursor": doc["next_cursor"]})
            items.extend(doc["items"])
        return {"items": items, "next_cursor": None}

    doc = call(ctx, fetch, scoped=scoped)
    if as_json:
        output.print_json(doc)
        return
    rows = doc["items"] if isinstance(doc, dict) else doc
    output.table(rows, columns, title=title)
    if isinstance(doc, dict) and doc.get("next_cursor"):
        output.note(f"more: --cursor {doc['next_cursor']} (or --all)")


def update(
    ctx: typer.Context,
    as_json: bool,
    path: str,
    fields: Doc,
    *,
    merge: Mapping[str, Mapping[str, Any]] | None = None,
    title: str | None = None,
    scoped: bool = True,
    render: Callable[[Any], None] | None = None,
) -> None:
    """PATCH the given fields. ``merge`` holds changes to nested objects (capacity, labels,
    resources); the API applies them as a JSON merge patch, a None value removing the key.
    The answer is printed by ``render`` (default: a key/value table).
    """
    nested = {k: dict(v) for k, v in (merge or {}).items() if v}
    if not fields and not nested:
        fail("nothing to change: give at least one option (see --help)", 2)

    async def patch(c: Client) -> Any:
        return await c.request("PATCH", path, json={**fields, **nested})

    shown = render or (lambda d: output.details(d, title=title))
    emit(call(ctx, patch, scoped=scoped), as_json, shown)


def delete(
    ctx: typer.Context,
    as_json: bool,
    path: str,
    what: str,
    object_id: str,
    *,
    scoped: bool = True,
) -> None:
    call(ctx, lambda c: c.delete(path), scoped=scoped)
    emit(
        {"id": object_id, "deleted": True},
        as_json,
        lambda _: output.line(f"deleted {what} {object_id}"),
    )


# Option values ----------------------------------------------------------------------------


def parse_scalar(text: str) -> Any:
    """A JSON-ish value: integers, numbers, true / false, else the string itself."""
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return text


def pairs(values: Sequence[str] | None, option: str, *, typed: bool = False) -> Doc:
    """``KEY=VALUE`` options as a dict; values parsed by ``parse_scalar`` when ``typed``."""
    out: Doc = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        out[key.strip()] = parse_scalar(value) if typed else value
    return out


def read_mapping(
    path: Path, fields: str, *, hint_mapping: bool = True, option: str = "--file"
) -> Doc:
    """A YAML or JSON mapping from ``--file PATH`` (or the ``option`` named; JSON by its
    suffix, else YAML); ``fields`` names a few of its keys for the message when it holds
    something else."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint=option
        ) from None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise typer.BadParameter(
            f"{path}: not valid JSON or YAML ({exc})", param_hint=option
        ) from None
    if not isinstance(doc, dict):
        message = f"{path}: must hold a mapping ({fields}, ...)"
        raise typer.BadParameter(message, param_hint=option if hint_mapping else None)
    return doc
