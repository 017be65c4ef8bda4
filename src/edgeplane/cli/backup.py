"""``edgeplane backup list|status|create|verify|restore|export-config`` and ``edgeplane
restore``: the control plane's backups (docs/disaster-recovery.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="Backups of the control plane: list, make, verify, restore.")
PATH = "/api/v1/backups"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _verified(doc: Doc) -> str:
    if doc.get("verify_ok") is None:
        return "not yet"
    return "ok" if doc["verify_ok"] else f"FAILED: {doc.get('verify_message', '')}"


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("KIND", "kind"),
    ("CREATED", "created_at"),
    ("REVISION", "revision"),
    ("SIZE", lambda d: _size(int(d["size_bytes"]))),
    ("AT", lambda d: ", ".join(d["locations"])),
    ("VERIFIED", _verified),
]


@app.command("list")
def list_backups(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="full, incremental or config")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="read the targets' manifests again first")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """The backups, newest first, with where they are and their last verification."""
    params = rt.compact(kind=kind, refresh="true" if refresh else None)
    rt.listing(ctx, as_json, PATH, COLUMNS, title="backups", params=params, scoped=False)


@app.command("status")
def status(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The schedule, the targets, the key id and the newest backup of each kind."""

    def render(doc: Doc) -> None:
        output.details(
            {
                "schedule": "on" if doc["schedule"] else "off",
                "engine": doc["engine"],
                "key id": doc["key_id"] or "(none yet: made by the first backup)",
                "full every": f"{doc['full_every_s'] / 86400:g} days",
                "incremental every": f"{doc['incremental_every_s'] / 86400:g} days",
                "verified every": f"{doc['verify_every_s'] / 86400:g} days",
            },
            title="backups",
        )
        output.table(
            doc["targets"],
            [("TARGET", "name"), ("URL", "url"), ("KINDS", "kinds")],
            title="targets",
        )
        newest = [b for b in doc["newest"].values() if b]
        output.table(newest, COLUMNS, title="newest")

    rt.request(ctx, as_json, "GET", f"{PATH}/status", scoped=False, render=render)


@app.command("create")
def create(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="full, incremental or config")] = "full",
    as_json: o.Json = False,
) -> None:
    """Make a backup now (an incremental without a full to extend is a full)."""
    doc = rt.call(ctx, lambda c: c.request("POST", PATH, json={"kind": kind}), scoped=False)
    if doc is None:
        output.note("the configuration did not change since the last configuration backup")
        return
    rt.emit(doc, as_json, lambda d: output.details(d, title="backup made", skip=("verify_checks",)))


@app.command("verify")
def verify(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(help="the backup's id, or latest")],
    as_json: o.Json = False,
) -> None:
    """Check every copy's checksum, restore into a scratch instance and check it."""

    def render(doc: Doc) -> None:
        output.table(doc["checks"], [("CHECK", "check"), ("OK", "ok"), ("DETAIL", "detail")],
                     title=f"verification of {doc['backup']}")  # fmt: skip
        output.line(
            ("PASSED" if doc["ok"] else "FAILED") + f" in {doc['seconds']:.2f} s",
            "green" if doc["ok"] else "red",
        )

    doc = rt.call(ctx, lambda c: c.request("POST", f"{PATH}/{backup_id}/verify"), scoped=False)
    rt.emit(doc, as_json, render)
    if not doc["ok"]:
        raise typer.Exit(1)


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        rt.fail(f"--at: {text!r} is not an ISO time (2026-12-05T06:30:00Z)")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def restore(
    backup_id: Annotated[
        str | None, typer.Argument(help="the backup to restore (default: the newest)")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="PostgreSQL: the point in time to recover to (ISO time)"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="a target to read backups from besides the configured ones "
            "(sftp://user@host/path?identity=..&known_hosts=.., or a directory)",
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="the backup key (default: $EDGEPLANE_BACKUP_KEY, else HOME/backup.key)",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="replace the state this home holds (it is moved aside)"),
    ] = False,
    pg_data: Annotated[
        Path | None,
        typer.Option("--pg-data", help="PostgreSQL: the new data directory to recover into"),
    ] = None,
    pg_port: Annotated[
        int | None, typer.Option("--pg-port", help="PostgreSQL: the port to recover on")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Restore a backup onto this machine, with the control plane stopped: the state, the
    tokens, the certificates and the keys as they were. Everything is checked before anything
    is replaced."""
    from edgeplane.backup import restore as restoring
    from edgeplane.backup.errors import BackupError
    from edgeplane.settings import Settings

    settings = Settings.from_env()
    try:
        done = restoring.restore(
            settings,
            backup_id=backup_id,
            at=_when(at),
            source=source,
            key_file=key_file,
            force=force,
            pg_data=pg_data,
            pg_port=pg_port,
        )
    except BackupError as exc:
        rt.fail(f"restore refused: {exc}; nothing was changed")
    doc: dict[str, Any] = done.as_dict()
    if as_json:
        output.print_json(doc)
        return
    output.details(doc, title="restored")
    for note in done.notes:
        output.note(note)
    output.note(
        "start the control plane (edgeplane up or serve): edge nodes reconnect by themselves"
    )


def export_config(
    backup_id: Annotated[str, typer.Argument(help="a configuration backup's id")],
    directory: Annotated[Path, typer.Argument(help="where to write one file per project")],
    source: Annotated[str | None, typer.Option("--from", help="a target to read from")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="the backup key")] = None,
) -> None:
    """Write a configuration backup's files (one per project) for `edgeplane apply`."""
    from edgeplane.backup import config_files
    from edgeplane.backup.errors import BackupError
    from edgeplane.settings import Settings

    try:
        written = config_files.export(
            Settings.from_env(), backup_id, directory, source=source, key_file=key_file
        )
    except BackupError as exc:
        rt.fail(str(exc))
    for path in written:
        output.plain(str(path))


app.command("restore")(restore)
app.command("export-config")(export_config)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
    root.add_typer(app, name="backups", help="Alias of backup.")
    root.command("restore")(restore)
