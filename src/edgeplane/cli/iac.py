"""``edgeplane export | plan | apply | drift | promote``: the project as a file.

``plan -f FILE`` shows what ``apply -f FILE`` would change (create ``+``, update ``~``,
replace ``-/+``, delete ``-``) with the fields that differ, the warnings and the monthly cost
change; ``apply`` shows the same plan, asks (``--yes`` for scripts) and applies exactly that
plan: if the live state moved in between, it is refused. ``plan -o PLAN`` saves a plan (no
secret in it) that ``apply -f PLAN`` applies later, refused if the state or the file moved since.
Exit codes as everywhere; ``plan --detailed-exitcode`` and ``drift --detailed-exitcode`` exit 2
when there are changes (as Terraform's).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client
    from edgeplane.sdk.resource_manager import ResourceManager, Spec

PLAN_FORMAT = "edgeplane-plan/1"
SIGNS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
STYLES = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}

File = Annotated[
    Path,
    typer.Option(
        "--file", "-f", help="the file (YAML or JSON; - for stdin), or a plan saved by plan -o"
    ),
]
Env = Annotated[
    str | None, typer.Option("--env", "-e", help="the environment of the file to resolve")
]
Vars = Annotated[
    list[str] | None,
    typer.Option(
        "--var", help="NAME=VALUE: a variable of the file (repeatable; wins over the file)"
    ),
]
Prune = Annotated[
    bool, typer.Option("--prune", help="delete the objects of the file's sections it lacks")
]
Detailed = Annotated[
    bool, typer.Option("--detailed-exitcode", help="exit 2 when there are changes, 0 when none")
]


def _manager(c: Client, ctx: typer.Context) -> ResourceManager:
    from edgeplane.sdk.resource_manager import ResourceManager

    return ResourceManager(ctx.find_root().obj.project, client=c)


def _fingerprint(doc: dict[str, Any]) -> str:
    """What a saved plan checks the file against: the resolved document without secret
    values (a digest of them would let the plan file be used to guess them)."""
    from edgeplane.iac.applied import without_values

    text = json.dumps(without_values(doc), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _read(path: Path) -> dict[str, Any]:
    from edgeplane.iac import template

    if str(path) == "-":
        return template.parse(sys.stdin.read(), "the standard input")
    try:
        text = path.read_text()
    except OSError as exc:
        rt.fail(f"--file: cannot read {path}: {exc.strerror}")
    return template.parse(text, str(path))


async def _spec(
    rm: ResourceManager, path: Path, env: str | None, variables: list[str] | None
) -> Spec:
    return await rm.resolve(_read(path), path.parent, env, rt.pairs(variables, "--var", typed=True))


# Rendering ---------------------------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, dict | list):
        text = json.dumps(v, separators=(", ", ": "), ensure_ascii=False)
        return text if len(text) <= 100 else text[:97] + "..."
    return output.fmt(v) if v is not None else "(none)"


def render_plan(doc: Doc, *, verb: str = "Plan") -> None:
    changes = doc["changes"]
    if not changes:
        output.plain("No changes: the live state is as the file says.")
    for c in changes:
        sign, style = SIGNS[c["action"]], STYLES[c["action"]]
        where = f"{c['section']}[{c['key']}]" if c["section"] != c["key"] else c["section"]
        output.line(f"{sign} {where}  ({c['kind']} {c['action']})", style)
        if c["action"] in ("update", "replace"):
            for f in c["fields"]:
                output.plain(f"    {f['path']}: {_value(f['before'])} -> {_value(f['after'])}")
    if doc["warnings"]:
        output.blank()
        output.line("Warnings:", "bold yellow")
        for w in doc["warnings"]:
            output.plain(f"  ! {w}")
    cost = doc.get("cost")
    if cost:
        change, unit = cost["monthly_change"], cost["currency"]
        output.blank()
        if change:
            parts = ", ".join(f"{k} {v:+.2f}" for k, v in cost["by_service"].items())
            output.plain(
                f"Monthly cost: {change:+.2f} {unit} ({cost['monthly_before']:.2f} -> "
                f"{cost['monthly_after']:.2f} a month{': ' + parts if parts else ''})"
            )
        else:
            output.plain(f"Monthly cost: no change ({cost['monthly_after']:.2f} {unit} a month)")
    s = doc["summary"]
    left = sum(doc.get("unmanaged", {}).values())
    tail = f"; {left} objects not in the file left alone" if left else ""
    output.blank()
    output.plain(
        f"{verb}: {s['create']} to create, {s['update']} to update, {s['replace']} to "
        f"replace, {s['delete']} to delete{tail}."
    )


def _changes(doc: Doc) -> int:
    return sum(doc["summary"].values())


# Commands ---------------------------------------------------------------------------------


def export(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="write to FILE")] = None,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            "--bundle-dir",
            help="download the edge deployment's bundle here and name it in the file",
        ),
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Write the project's live state as a file (YAML; --json for JSON)."""

    async def run(c: Client) -> dict[str, Any]:
        rm = _manager(c, ctx)
        doc = await rm.export()
        deployment = doc.get("edge_deployment")
        if bundle_dir is not None and isinstance(deployment, dict) and deployment.get("bundle"):
            from edgeplane.sdk.edge_service import EdgeDeploymentService

            bundle_dir.mkdir(parents=True, exist_ok=True)
            target = bundle_dir / f"{deployment['bundle']}.tar"
            edge = EdgeDeploymentService(rm.project_id, client=c)
            await edge.download_bundle(deployment["bundle"], target, site=True)
            base = out.parent if out is not None else Path.cwd()
            try:
                deployment["bundle"] = str(target.resolve().relative_to(base.resolve()))
            except ValueError:
                deployment["bundle"] = str(target.resolve())
        return doc

    doc = rt.call(ctx, run)
    text = (
        json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if as_json
        else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    )
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        output.note(f"wrote {out}")


def plan(
    ctx: typer.Context,
    file: File,
    env: Env = None,
    var: Vars = None,
    prune: Prune = False,
    save: Annotated[
        Path | None, typer.Option("--out", "-o", help="save the plan to apply it later")
    ] = None,
    detailed: Detailed = False,
    as_json: o.Json = False,
) -> None:
    """Show what apply would change: per object, the fields, the warnings, the cost."""

    async def run(c: Client) -> tuple[Doc, Spec]:
        rm = _manager(c, ctx)
        spec = await _spec(rm, file, env, var)
        return (await rm.plan(spec, prune=prune)).model_dump(mode="json"), spec

    doc, spec = rt.call(ctx, run)
    if save is not None:
        from edgeplane.iac.applied import without_values

        saved = {
            "format": PLAN_FORMAT,
            "file": str(file.resolve()),
            "environment": env,
            "variables": rt.pairs(var, "--var", typed=True),
            "prune": prune,
            "project": doc["project"],
            "state": doc["state"],
            "fingerprint": _fingerprint(spec.document),
            "document": without_values(spec.document),
            "plan": doc,
        }
        save.write_text(json.dumps(saved, indent=2) + "\n")
        save.chmod(0o600)
    rt.emit(doc, as_json, render_plan)
    if save is not None and not as_json:
        output.note(f"saved the plan to {save}: apply it with `edgeplane apply -f {save}`")
    if detailed and _changes(doc):
        raise typer.Exit(2)


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        rt.fail(f"{what}: confirm with --yes (no terminal to ask on)")
    if not typer.confirm(f"{what}?", default=False):
        rt.fail("cancelled: nothing was changed")


def apply(
    ctx: typer.Context,
    file: File,
    env: Env = None,
    var: Vars = None,
    prune: Prune = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="seconds to wait for another apply")
    ] = 0.0,
    wait: Annotated[
        bool, typer.Option("--wait", help="until every online edge node serves the result")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds for --wait")] = 60.0,
    as_json: o.Json = False,
) -> None:
    """Apply a file (or a saved plan): all or nothing, one revision."""
    source = _read(file)
    saved = source if source.get("format") == PLAN_FORMAT else None

    async def run(c: Client) -> tuple[Doc, list[str]]:
        rm = _manager(c, ctx)
        if saved is not None:
            spec = await _spec(
                rm, Path(saved["file"]), saved["environment"], _var_list(saved["variables"])
            )
            if _fingerprint(spec.document) != saved["fingerprint"]:
                rt.fail(
                    f"{saved['file']} (or a file it references) changed since the plan was "
                    "saved: make a new plan"
                )
            state, do_prune = saved["state"], bool(saved["prune"])
            shown = saved["plan"]
        else:
            spec = await rm.resolve(source, file.parent, env, rt.pairs(var, "--var", typed=True))
            do_prune = prune
            shown = (await rm.plan(spec, prune=do_prune)).model_dump(mode="json")
            state = shown["state"]
        if not as_json and saved is None:  # a saved plan was shown when it was made
            render_plan(shown)
        if _changes(shown) and saved is None:
            if not as_json:
                output.blank()
            _confirm(yes, f"Apply these changes to project {shown['project']!r}")
        # with no change too: the apply is recorded, the baseline drift compares with
        done = await rm.apply(spec, prune=do_prune, state=state, lock_timeout=lock_timeout)
        result = done.model_dump(mode="json")
        problems: list[str] = []
        if wait:
            problems = await rm.wait_converged(done.revision, timeout)
        return result, problems

    doc, problems = rt.call(ctx, run)
    if as_json:
        output.print_json(doc)
    else:
        if saved is not None:
            render_plan(doc)
            output.blank()
        s = doc["summary"]
        if not _changes(doc):
            output.plain(f"Nothing to change; recorded as applied (revision {doc['revision']}).")
        else:
            output.plain(
                f"Applied as revision {doc['revision']}: {s['create']} created, {s['update']} "
                f"updated, {s['replace']} replaced, {s['delete']} deleted."
            )
        if wait and not problems:
            output.plain("Every online edge node serves it.")
    for p in problems:
        output.error(p)
    if problems:
        raise typer.Exit(1)


def _var_list(variables: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in variables.items()]


def render_drift(doc: Doc) -> None:
    applied = doc["applied"]
    if applied is None:
        output.plain("Nothing applied to this project yet: no drift to show.")
        return
    output.plain(
        f"Compared with the apply of {applied['applied_at']} by {applied['actor']} "
        f"(revision {applied['revision']})."
    )
    if not doc["drifted"]:
        output.plain("No drift: every object of the file is as it was applied.")
        return
    for d in doc["drifted"]:
        where = f"{d['section']}[{d['key']}]" if d["section"] != d["key"] else d["section"]
        output.line(f"! {where}  ({d['kind']} {d['change']})", "yellow")
        for f in d["fields"]:
            output.plain(f"    {f['path']}: {_value(f['before'])} -> {_value(f['after'])}")
        for e in d["changed_by"]:
            output.plain(
                f"    by {e['actor']}: {e['action']} at {e['at']} (revision {e['revision']})"
            )
    output.blank()
    output.plain(f"Drift: {len(doc['drifted'])} objects changed since the apply.")


def drift(ctx: typer.Context, detailed: Detailed = False, as_json: o.Json = False) -> None:
    """What changed since the last apply, and who changed it."""

    async def run(c: Client) -> Doc:
        return (await _manager(c, ctx).drift()).model_dump(mode="json")

    doc = rt.call(ctx, run)
    rt.emit(doc, as_json, render_drift)
    if detailed and doc["drifted"]:
        raise typer.Exit(2)


def promote(
    ctx: typer.Context,
    file: File,
    source_env: Annotated[str, typer.Option("--from", help="the environment to promote")],
    target_env: Annotated[str, typer.Option("--to", help="the environment to promote to")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
    as_json: o.Json = False,
) -> None:
    """Apply to one environment what was applied to another: the file as applied to --from,
    resolved for --to (its project, variables and overlay), planned, confirmed, applied."""
    from edgeplane.iac import template

    environments = template.environments(_read(file))
    for name in (source_env, target_env):
        if environments.get(name) is None:
            known = ", ".join(sorted(environments)) or "none"
            rt.fail(
                f"--from/--to: {name!r} is not an environment with a project in {file} ({known})"
            )

    async def run(c: Client) -> Doc:
        rm = _manager(c, ctx)
        applied = await rm.applied(environments[source_env])
        if applied is None or not applied.get("source"):
            rt.fail(f"nothing was applied to {source_env} ({environments[source_env]}) from a file")
        spec = await rm.resolve(applied["source"], file.parent, target_env)
        bundle = (applied["document"].get("edge_deployment") or {}).get("bundle")
        target = spec.document.get("edge_deployment")
        if isinstance(target, dict) and bundle:
            await _copy_bundle(c, bundle, environments[source_env], spec.project)
            target["bundle"] = bundle  # the version tested in the source environment
        shown = (await rm.plan(spec)).model_dump(mode="json")
        if not as_json:
            output.plain(
                f"Promoting what {source_env} runs (applied {applied['applied_at']}, revision "
                f"{applied['revision']}) to {target_env} ({spec.project}):"
            )
            render_plan(shown)
        if not _changes(shown):
            return shown
        _confirm(yes, f"Apply these changes to {target_env} ({spec.project})")
        return (await rm.apply(spec, state=shown["state"])).model_dump(mode="json")

    doc = rt.call(ctx, run)
    if as_json:
        output.print_json(doc)
    elif doc.get("applied"):
        output.plain(f"Promoted: {target_env} is at revision {doc['revision']}.")


async def _copy_bundle(c: Client, bundle: str, source: str | None, target: str | None) -> None:
    """The source environment's bundle, uploaded to the target's project (same id)."""
    import tempfile

    from edgeplane.sdk.edge_service import EdgeDeploymentService

    with tempfile.TemporaryDirectory(prefix="edgeplane-promote-") as work:
        path = Path(work) / f"{bundle}.tar"
        await EdgeDeploymentService(source, client=c).download_bundle(bundle, path, site=True)
        await EdgeDeploymentService(target, client=c).upload_bundle(path, target)


def schema(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="write to FILE")] = None,
) -> None:
    """Print the file's JSON Schema (for editors)."""
    from edgeplane.iac.schema import document_schema

    text = json.dumps(document_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("plan")(plan)
    app.command("apply")(apply)
    app.command("drift")(drift)
    app.command("promote")(promote)
    app.command("schema")(schema)
