"""``edgeplane cdn security`` and ``edgeplane cdn under-attack``: the project's security at the
edge (one document, changed by JSON merge patch) and the switch that tightens every client
limit at once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeplane.cli import edge_nodes, output
from edgeplane.cli import options as o
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

security_app = typer.Typer(
    help="Security at the edge: HTTPS, HSTS, IP lists, rate and client limits (L7 DDoS)."
)
attack_app = typer.Typer(help="The under-attack switch: every client limit tightened at once.")

SECURITY_PATH = f"{rt.BASE}/cdn/security"
ATTACK_PATH = f"{rt.BASE}/cdn/under-attack"
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
LIMIT_LABELS = {
    "max_connections": "requests at once per client",
    "header_timeout_s": "header timeout, s",
    "body_timeout_s": "body timeout (between reads), s",
    "send_timeout_s": "send timeout (between writes), s",
    "keepalive_timeout_s": "keep-alive timeout, s",
    "max_header_bytes": "max header, bytes",
    "max_body_bytes": "max body, bytes",
}


def parse_size(text: str, option: str) -> int:
    """``16k``, ``10m``, ``1g`` (powers of 1024) or bytes."""
    m = _SIZE.match(text)
    if not m:
        raise typer.BadParameter(
            f"{text!r} is not a size (bytes, or 16k, 10m, 1g)", param_hint=option
        )
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def parse_rate(text: str) -> Doc:
    rate, _, burst = text.partition(":")
    try:
        return {"rate": int(rate), "burst": int(burst or 0)}
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not RATE[:BURST] or none", param_hint="--rate-limit"
        ) from None


def _path_doc(path: str, value: Any, option: str) -> Doc:
    """``limits.max_connections`` and a value -> ``{"limits": {"max_connections": value}}``."""
    keys = path.strip().split(".")
    if not all(re.fullmatch(r"[a-z_][a-z0-9_]*", k) for k in keys):
        raise typer.BadParameter(
            f"{path!r} is not a field path (limits.max_connections)", param_hint=option
        )
    doc: Any = value
    for key in reversed(keys):
        doc = {key: doc}
    return doc  # type: ignore[no-any-return]


def _merge(into: Doc, patch: Doc) -> Doc:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _limits_rows(limits: Doc) -> list[Doc]:
    return [
        {"limit": label, "value": "-" if limits.get(k) is None else limits[k]}
        for k, label in LIMIT_LABELS.items()
    ]


def _waf_text(waf: Doc | None) -> str:
    if not waf or waf.get("mode", "off") == "off":
        return "off"
    n = len(waf.get("exclusions") or [])
    return (
        f"{waf['mode']}, paranoia {waf.get('paranoia_level')}, anomaly threshold "
        f"{waf.get('anomaly_threshold')}, {n} exclusion{'' if n == 1 else 's'}"
    )


def _bots_text(bots: Doc | None) -> str:
    if not bots or bots.get("mode", "off") == "off":
        return "off"
    b = bots.get("behaviour") or {}
    behaviour = (
        "off"
        if b.get("action", "off") == "off"
        else f"{b['action']} above {b.get('max_requests')} requests or {b.get('max_paths')} "
        f"paths per {b.get('window_s')} s"
    )
    good = len(bots.get("good_bots") or [])
    return (
        f"{bots['mode']}; automated clients {bots.get('automated', 'off')}; behaviour "
        f"{behaviour}; challenge {bots.get('challenge')}; {good} good bot{'' if good == 1 else 's'}"
    )


def _header_text(policy: Doc) -> str:
    action, value = policy.get("action"), policy.get("value")
    if action == "keep":
        return f"the origin's, else {value}" if value else "the origin's (none added)"
    if action == "set":
        return f"set: {value}"
    return "removed" if action == "remove" else str(action)


def _headers_rows(headers: Doc | None) -> Doc:
    rows: Doc = {}
    for name, policy in (headers or {}).items():
        if isinstance(policy, dict):
            rows[f"header {name.replace('_', '-')}"] = _header_text(policy)
    if headers is not None:
        rows["leaking headers"] = "removed" if headers.get("remove_leaking", True) else "kept"
    return rows


def security_summary(sec: Doc) -> str:
    """One line of a CDN config's security (``edgeplane cdn show``)."""
    hsts = sec.get("hsts_max_age") or 0
    parts = [
        "UNDER ATTACK" if sec.get("under_attack") else "",
        f"https redirect {'on' if sec.get('force_https') else 'off'}",
        f"HSTS {hsts} s" if hsts else "HSTS off",
        f"WAF {(sec.get('waf') or {}).get('mode', 'off')}",
        f"bots {(sec.get('bots') or {}).get('mode', 'off')}",
        "rate limit" if sec.get("rate_limit") else "",
        "client limits" if any(v is not None for v in (sec.get("limits") or {}).values()) else "",
    ]
    return ", ".join(p for p in parts if p) + " (edgeplane cdn security show)"


def render_security(doc: Doc) -> None:
    sec = doc["security"]
    rate = sec.get("rate_limit")
    shown = {
        "project": doc["project"],
        "under_attack": sec.get("under_attack", False),
        "force_https": sec.get("force_https"),
        "hsts_max_age": sec.get("hsts_max_age"),
        "hsts_include_subdomains": sec.get("hsts_include_subdomains"),
        "rate_limit": f"{rate['rate']}/s burst {rate['burst']}" if rate else "-",
        "ip_allow": sec.get("ip_allow") or "-",
        "ip_deny": sec.get("ip_deny") or "-",
        "waf": _waf_text(sec.get("waf")),
        "bots": _bots_text(sec.get("bots")),
        **_headers_rows(sec.get("headers")),
    }
    # settings of parts this view does not know yet are shown as they are
    known = {"limits", "rate_limit", "ip_allow", "ip_deny", "under_attack", "force_https"}
    known |= {"hsts_max_age", "hsts_include_subdomains", "waf", "bots", "headers"}
    shown |= {k: v for k, v in sec.items() if k not in known and k not in shown}
    shown["revision"] = doc.get("revision")
    output.details(shown)
    output.blank()
    output.table(
        _limits_rows(sec.get("limits") or {}),
        [("CLIENT LIMIT", "limit"), ("VALUE", "value")],
        title="client limits (-: the edge's default)",
    )


def render_attack(doc: Doc) -> None:
    state = "ON" if doc["under_attack"] else "off"
    output.line(f"{doc['project']}: under attack {state} (revision {doc['revision']})")
    rate = doc.get("rate_limit")
    rows = _limits_rows(doc["limits"])
    rows.append(
        {"limit": "rate limit", "value": f"{rate['rate']}/s burst {rate['burst']}" if rate else "-"}
    )
    output.table(rows, [("APPLIED", "limit"), ("VALUE", "value")], title="limits applied")


def _send(
    ctx: typer.Context,
    method: str,
    path: str,
    body: Doc,
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
    render: Any,
) -> None:
    async def run(c: Client) -> tuple[Any, list[str]]:
        doc = await c.request(method, path, json=body)
        revision = doc.get("revision")
        if not wait or revision is None:
            return doc, []
        return doc, await edge_nodes.wait_applied(c, revision, timeout, show=not as_json)

    doc, problems = rt.call(ctx, run)
    rt.emit(doc, as_json, render)
    if problems:
        rt.fail("; ".join(problems), 1)


Wait = Annotated[
    bool, typer.Option("--wait", help="until every online edge node serves the change")
]
Timeout = Annotated[float, typer.Option("--timeout", help="seconds to wait at most")]


@security_app.command("show")
def show(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The project's security at the edge."""
    rt.request(ctx, as_json, "GET", SECURITY_PATH, render=render_security)


@security_app.command("set")
def set_security(
    ctx: typer.Context,
    max_connections: Annotated[
        int | None, typer.Option("--max-connections", help="requests at once per client")
    ] = None,
    header_timeout: Annotated[
        int | None, typer.Option("--header-timeout", help="seconds to send the whole header")
    ] = None,
    body_timeout: Annotated[
        int | None, typer.Option("--body-timeout", help="seconds between two body reads")
    ] = None,
    send_timeout: Annotated[
        int | None, typer.Option("--send-timeout", help="seconds between two response writes")
    ] = None,
    keepalive_timeout: Annotated[
        int | None, typer.Option("--keepalive-timeout", help="seconds an idle connection lives")
    ] = None,
    max_header: Annotated[
        str | None, typer.Option("--max-header-size", help="request line and headers: 16k")
    ] = None,
    max_body: Annotated[str | None, typer.Option("--max-body-size", help="body: 10m")] = None,
    rate_limit: Annotated[
        str | None, typer.Option("--rate-limit", help="RATE[:BURST] requests/s per client, or none")
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD.PATH=VALUE, e.g. limits.max_connections=20; repeatable"),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", help="FIELD.PATH back to its default; repeatable"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="a merge patch from YAML or JSON")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 30.0,
    as_json: o.Json = False,
) -> None:
    """Change some security settings (a merge patch: what is not given stays)."""
    patch: Doc = rt.read_mapping(file, "limits, rate_limit") if file is not None else {}
    limits = rt.compact(
        max_connections=max_connections,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        send_timeout_s=send_timeout,
        keepalive_timeout_s=keepalive_timeout,
        max_header_bytes=parse_size(max_header, "--max-header-size") if max_header else None,
        max_body_bytes=parse_size(max_body, "--max-body-size") if max_body else None,
    )
    if limits:
        _merge(patch, {"limits": limits})
    if rate_limit is not None:
        if rate_limit.strip().lower() == "none":
            patch["rate_limit"] = None
        else:
            patch["rate_limit"] = parse_rate(rate_limit)
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not FIELD.PATH=VALUE", param_hint="--set")
        _merge(patch, _path_doc(key, rt.parse_scalar(value), "--set"))
    for key in unset or ():
        _merge(patch, _path_doc(key, None, "--unset"))
    if not patch:
        rt.fail("nothing to change: give options, --set, --unset or --file", 2)
    _send(ctx, "PATCH", SECURITY_PATH, patch, wait=wait, timeout=timeout, as_json=as_json,
          render=render_security)  # fmt: skip


@attack_app.command("show")
def attack_show(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Whether the project is under attack, and the limits the edge applies."""
    rt.request(ctx, as_json, "GET", ATTACK_PATH, render=render_attack)


@attack_app.command("on")
def attack_on(
    ctx: typer.Context, wait: Wait = False, timeout: Timeout = 30.0, as_json: o.Json = False
) -> None:
    """Tighten every client limit of the project at once (docs/security-ddos.md: the values)."""
    _send(ctx, "POST", ATTACK_PATH, {"enabled": True}, wait=wait, timeout=timeout,
          as_json=as_json, render=render_attack)  # fmt: skip


@attack_app.command("off")
def attack_off(
    ctx: typer.Context, wait: Wait = False, timeout: Timeout = 30.0, as_json: o.Json = False
) -> None:
    """Back to the project's own limits."""
    _send(ctx, "POST", ATTACK_PATH, {"enabled": False}, wait=wait, timeout=timeout,
          as_json=as_json, render=render_attack)  # fmt: skip
