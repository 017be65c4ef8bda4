"""``edgeplane bots``: the project's bot protection (settings) and what the edge counted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="Bot protection at the edge: known-bad and automated clients, challenges.")

BOTS_PATH = f"{rt.BASE}/cdn/bots"
SETTINGS_PATH = f"{BOTS_PATH}/settings"
COUNT_COLUMNS: list[Column] = [
    ("CLASS", "bot_class"),
    ("ACTION", "action"),
    ("REQUESTS", "requests"),
]
GOOD_COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("USER AGENT", "user_agent"),
    ("ADDRESSES", lambda b: ", ".join(b["addresses"])),
]
Action = Annotated[str | None, typer.Option(help="off, detect, challenge or block")]


def render_settings(doc: Doc) -> None:
    b = doc["behaviour"]
    output.details(
        {
            "known-bad (mode)": doc["mode"],
            "automated": doc["automated"],
            "behaviour": b["action"],
            "thresholds": (
                f"{b['max_requests']} requests, {b['max_paths']} paths, "
                f"{b['max_error_ratio']:.0%} errors (from {b['min_requests']}) per "
                f"{b['window_s']} s; flagged {b['flag_s']} s"
            ),
            "challenge": f"{doc['challenge']} (difficulty {doc['difficulty']} bits)",
            "cookie lasts": f"{doc['cookie_ttl_s']} s",
        },
        title="bot settings",
    )
    if doc["good_bots"]:
        output.table(doc["good_bots"], GOOD_COLUMNS, title="good bots")


def render_summary(doc: Doc) -> None:
    output.details(
        {
            "project": doc["project"],
            "enabled": doc["enabled"],
            "window": f"{output.fmt(doc['start'])} .. {output.fmt(doc['end'])}",
            "requests": doc["requests"],
            "bot requests": doc["bot_requests"],
            "challenged": doc["challenged"],
            "blocked": doc["blocked"],
        },
        title="bots",
    )
    output.table(doc["counts"], COUNT_COLUMNS, title="bot requests in this window")
    output.blank()
    render_settings(doc["settings"])


@app.command("status")
def status(
    ctx: typer.Context,
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="1h, 6h, 24h, 7d or 30d, ending now")
    ] = "1h",
    as_json: o.Json = False,
) -> None:
    """The bot requests the edge counted (by class and action) and the settings."""
    rt.request(
        ctx, as_json, "GET", BOTS_PATH, params={"timeframe": timeframe}, render=render_summary
    )


@app.command("show")
def show(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The project's bot settings."""
    rt.request(ctx, as_json, "GET", SETTINGS_PATH, render=render_settings)


def _good_bot(text: str) -> Doc:
    name, ua, ranges = [*text.split("=", 2), "", ""][:3]
    if not name or not ua or not ranges:
        raise typer.BadParameter(
            f"{text!r} is not NAME=USER_AGENT=CIDR[,CIDR...]", param_hint="--good-bot"
        )
    return {"name": name, "user_agent": ua, "addresses": ranges.split(",")}


@app.command("set")
def set_settings(
    ctx: typer.Context,
    mode: Action = None,
    automated: Action = None,
    behaviour: Action = None,
    challenge: Annotated[str | None, typer.Option(help="cookie or javascript")] = None,
    difficulty: Annotated[
        int | None, typer.Option(help="zero bits of the JavaScript proof of work")
    ] = None,
    cookie_ttl: Annotated[int | None, typer.Option(help="seconds a passed challenge lasts")] = None,
    max_requests: Annotated[int | None, typer.Option(help="requests per window")] = None,
    max_paths: Annotated[int | None, typer.Option(help="distinct paths per window")] = None,
    max_error_ratio: Annotated[float | None, typer.Option(help="share of errors")] = None,
    window: Annotated[int | None, typer.Option(help="the behaviour window, seconds")] = None,
    flag_for: Annotated[int | None, typer.Option(help="seconds a flag lasts")] = None,
    good_bot: Annotated[
        list[str] | None,
        typer.Option(
            "--good-bot", help="NAME=USER_AGENT=CIDR[,CIDR...]; repeatable; replaces the list"
        ),
    ] = None,
    no_good_bots: Annotated[
        bool, typer.Option("--no-good-bots", help="remove every good bot")
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="the whole settings from YAML or JSON")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Change the project's bot settings (what is not given stays)."""
    if file is not None:
        body: dict[str, Any] = rt.read_mapping(file, "mode, automated, behaviour, good_bots")
    else:

        async def current(c: Any) -> Any:
            return await c.request("GET", SETTINGS_PATH)

        body = dict(rt.call(ctx, current))
        body.update(
            rt.compact(
                mode=mode,
                automated=automated,
                challenge=challenge,
                difficulty=difficulty,
                cookie_ttl_s=cookie_ttl,
            )
        )
        body["behaviour"] = {
            **body.get("behaviour", {}),
            **rt.compact(
                action=behaviour,
                max_requests=max_requests,
                max_paths=max_paths,
                max_error_ratio=max_error_ratio,
                window_s=window,
                flag_s=flag_for,
            ),
        }
        if no_good_bots:
            body["good_bots"] = []
        elif good_bot:
            body["good_bots"] = [_good_bot(g) for g in good_bot]
    rt.request(ctx, as_json, "PUT", SETTINGS_PATH, body=body, render=render_settings)
