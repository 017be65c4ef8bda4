"""The control plane's build of a revision, at 10 and at N domains: from parts against full.

Run from the repository root::

    .venv/bin/python bench/snapshot.py [--quick] [--domains 10000] [--changes 20]
        [--state DIR] [--markdown]

For each size (10 domains, the reference, and ``--domains`` N): a control-plane home (SQLite,
its secret key) holding two live edge nodes and N domains added through the service layer as
the API adds them (``*.localhost``: verified at once, each with its zone and its certificate
from the internal CA), in transactions of 500; with ``--state DIR`` the N-domain home is made
once in DIR and copied from there afterwards (making 10,000 takes a minute or more). Then the
real app (``create_app``, no background work) in process, through FastAPI's test client:

1. a full build of the newest revision (warm: certificates already decrypted) by a cache that
   builds every revision in full, as the control plane did before ``snapshot.parts``;
2. ``--changes`` changes, alternately a domain added (``POST .../domains``) and a DNS record
   changed (``PATCH .../records``). Each: the API call (to its answer, committed); the build
   of the new revision by the app's own cache (from the previous revision's parts), then by
   the full-build cache (the reference); node 1's long-poll answer (manifest by reference)
   and node 2's (the same revision: its manifest only), then node 1 fetching the new objects.
   The bench then collects the garbage of the reference's build (untimed; the full
   collections counted in the table are those that happened anyway, in what was timed);
3. one full build by the app's cache (its parts dropped: what a fallback costs, parts made);
4. the process's RSS (the control plane runs in it): after the first build and long-poll,
   and at the end (with the reference cache's own caches too).

Each figure is printed beside its reference from the same run: the build beside the full
build of the same revisions, the API call and RSS beside the 10-domain figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This folder holds dns.py: as a script's folder it would come first on sys.path and hide
# dnspython's ``dns`` package from edgeplane. It goes last instead (for common.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))

from common import BenchRun, log, pct, signals_raise, table  # noqa: E402

DOMAIN = "bench.localhost"
CHUNK = 500


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def domain_count(home: Path) -> int:
    db = home / "edgeplane.db"
    if not db.exists():
        return -1
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM domains").fetchone()[0])


def make_state(home: Path, total: int) -> None:
    """A control-plane home with two live edge nodes and ``total`` domains."""
    from sqlalchemy import select

    from edgeplane.cli.serve import _prepare
    from edgeplane.protocol.messages import Heartbeat, NodeRegister
    from edgeplane.services import domains, edge_nodes
    from edgeplane.snapshot.cache import SnapshotCache
    from edgeplane.store.actor import LOCAL
    from edgeplane.store.tables import EdgeNodeRow

    settings, db, _ = _prepare(home)
    try:
        assert db.secrets is not None
        cache = SnapshotCache(db.secrets)  # registration reads it (the node's snapshot hash)
        with db.transaction(LOCAL, "default") as tx:
            for i in (1, 2):
                spec = NodeRegister(name=f"edge-{i}", region="us-east", address=f"127.0.0.{i}",
                                    http_port=8080)  # fmt: skip
                edge_nodes.register(tx, cache, spec)
        with db.transaction(LOCAL, "default") as tx:
            for row in tx.session.scalars(select(EdgeNodeRow)):
                edge_nodes.heartbeat(tx, row.id, Heartbeat(healthy=True), settings)
        started = time.monotonic()
        for start in range(0, total, CHUNK):
            with db.transaction(LOCAL, "default") as tx:
                for i in range(start, min(total, start + CHUNK)):
                    domains.add(tx, {"domain": f"d{i}.{DOMAIN}"}, settings)
            if total > CHUNK:
                log(f"  {min(total, start + CHUNK):,} domains ({time.monotonic() - started:.0f} s)")
    finally:
        db.dispose()
    with sqlite3.connect(home / "edgeplane.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def prepared(run: BenchRun, total: int, keep: Path | None) -> Path:
    """A copy of a home with ``total`` domains (made in ``keep`` once, when given)."""
    home = run.tmp / f"cp-{total}"
    if keep is not None and domain_count(keep) == total:
        log(f"{total:,} domains: copying {keep}")
        shutil.copytree(keep, home)
        for f in home.iterdir():
            f.chmod(0o600)
        return home
    log(f"{total:,} domains: making the state")
    started = time.monotonic()
    make_state(home, total)
    log(f"{total:,} domains made in {time.monotonic() - started:.0f} s")
    if keep is not None and not keep.exists():
        shutil.copytree(home, keep)
        log(f"kept in {keep} for the next runs")
    return home


@dataclass
class Figures:
    domains: int
    add_api: list[float] = field(default_factory=list)
    add_build: list[float] = field(default_factory=list)
    add_full: list[float] = field(default_factory=list)
    record_api: list[float] = field(default_factory=list)
    record_build: list[float] = field(default_factory=list)
    record_full: list[float] = field(default_factory=list)
    poll_first: list[float] = field(default_factory=list)
    poll_second: list[float] = field(default_factory=list)
    objects: list[float] = field(default_factory=list)
    fallback_ms: float = 0.0
    incremental: int = 0
    first_ms: float = 0.0
    collections: list[float] = field(default_factory=list)  # ms of each full collection
    rss_built: float = 0.0
    rss: float = 0.0
    loads: list[str] = field(default_factory=list)


def measure(home: Path, changes: int) -> Figures:
    from fastapi.testclient import TestClient

    from edgeplane.api.app import create_app
    from edgeplane.protocol.config import EdgeManifest
    from edgeplane.secrets import SecretBox
    from edgeplane.services import access
    from edgeplane.settings import Settings
    from edgeplane.snapshot.cache import SnapshotCache
    from edgeplane.store.actor import LOCAL
    from edgeplane.store.db import Database

    settings = Settings.from_env(home=home)
    box = SecretBox.from_settings(settings)
    db = Database(settings.effective_database_url, secrets=box)
    total = 0
    try:
        admin = access.ensure_admin_token(db, settings.admin_token_path)
        with db.transaction(LOCAL, "default") as tx:
            edge = access.create_token(tx, {"name": "bench-edge", "scope": "edge"}).token
            total = int(tx.session.execute(_count()).scalar_one())
        app = create_app(settings, db)
        cache: SnapshotCache = app.state.snapshots
        client = TestClient(app, raise_server_exceptions=True)
        api = {"Authorization": f"Bearer {admin}"}
        node_auth = {"Authorization": f"Bearer {edge}"}
        nodes = [n["id"] for n in client.get("/api/v1/edge/nodes", headers=api).json()]
        figures = Figures(total)

        def build(c: SnapshotCache) -> float:
            with db.read(LOCAL, "default") as tx:
                started = time.perf_counter()
                c.view(tx.session, tx.current_revision())
                return (time.perf_counter() - started) * 1000

        def poll(node: str, after: int) -> tuple[float, EdgeManifest]:
            started = time.perf_counter()
            r = client.get(f"/api/v1/edge/nodes/{node}/config", headers=node_auth,
                           params={"after": after, "refs": "true", "wait": 0})  # fmt: skip
            took = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            return took, EdgeManifest.model_validate(r.json()["manifest"])

        collections: list[float] = []  # full (generation 2) collections: their ms
        started_gc = [0.0]

        explicit = [False]  # the bench's own collections, after the reference's builds

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if info.get("generation") != 2 or explicit[0]:
                return
            if phase == "start":
                started_gc[0] = time.perf_counter()
            else:
                collections.append((time.perf_counter() - started_gc[0]) * 1000)

        gc.callbacks.append(on_gc)
        figures.collections = collections
        figures.first_ms = build(cache)  # certificates decrypted, parts made
        _, before = poll(nodes[0], -1)
        figures.rss_built = rss_mib()  # the control plane as it serves, before the reference
        full = SnapshotCache(box, incremental=False)  # every revision in full, no parts
        build(full)
        for i in range(changes):
            started = time.perf_counter()
            if i % 2 == 0:
                r = client.post("/api/v1/infrastructure/domains", headers=api,
                                json={"domain": f"new{i}.{DOMAIN}"})  # fmt: skip
            else:
                body = {"set": [{"name": "www", "type": "TXT", "values": [f'"v{i}"']}]}
                target = f"d{(i // 2) % total}.{DOMAIN}"  # of the N made
                r = client.patch(f"/api/v1/infrastructure/domains/{target}/records",
                                 headers=api, json=body)  # fmt: skip
            api_ms = (time.perf_counter() - started) * 1000
            r.raise_for_status()
            ms = build(cache)
            if cache.last_build[0] == "incremental":
                figures.incremental += 1
            ref = build(full)
            # The reference's garbage (its caches of the revision before) is collected here,
            # untimed: the collections counted are the control plane's own.
            explicit[0] = True
            gc.collect()
            explicit[0] = False
            first_ms, manifest = poll(nodes[0], before.revision)
            second_ms, _ = poll(nodes[1], before.revision)
            new = sorted(set(manifest.objects()) - set(before.objects()))
            started = time.perf_counter()
            got = client.post(f"/api/v1/edge/nodes/{nodes[0]}/objects", headers=node_auth,
                              json={"hashes": new})  # fmt: skip
            objects_ms = (time.perf_counter() - started) * 1000
            got.raise_for_status()
            before = manifest
            if i % 2 == 0:
                figures.add_api.append(api_ms)
                figures.add_build.append(ms)
                figures.add_full.append(ref)
            else:
                figures.record_api.append(api_ms)
                figures.record_build.append(ms)
                figures.record_full.append(ref)
            figures.poll_first.append(first_ms)
            figures.poll_second.append(second_ms)
            figures.objects.append(objects_ms)
            figures.loads.append(load())
        cache.drop_parts()
        r = client.post("/api/v1/infrastructure/domains", headers=api,
                        json={"domain": f"fallback.{DOMAIN}"})  # fmt: skip
        r.raise_for_status()
        figures.fallback_ms = build(cache)
        figures.rss = rss_mib()
        gc.callbacks.remove(on_gc)
        client.close()
        return figures
    finally:
        db.dispose()


def _count() -> Any:
    from sqlalchemy import func, select

    from edgeplane.store.tables import DomainRow

    return select(func.count()).select_from(DomainRow)


def p50_p99(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):,.1f} / {pct(values, 99):,.1f}"


def ratio(a: list[float], b: list[float]) -> str:
    if not a or not b:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.3f}"


def rows_for(big: Figures, small: Figures) -> list[list[str]]:
    n = f"{big.domains:,} domains"
    k = len(big.add_build) + len(big.record_build)
    rows = [
        [f"{n}: build after a domain added, p50 / p99 ms (from parts vs full build)",
         p50_p99(big.add_build), p50_p99(big.add_full), ratio(big.add_build, big.add_full)],
        [f"{n}: build after a record changed, p50 / p99 ms (from parts vs full build)",
         p50_p99(big.record_build), p50_p99(big.record_full),
         ratio(big.record_build, big.record_full)],
        [f"{n}: revisions built from parts, of {k}", f"{big.incremental}", "-", "-"],
        [f"{n}: a fallback full build (parts made), ms (vs full build p50)",
         f"{big.fallback_ms:,.0f}", f"{statistics.median(big.add_full + big.record_full):,.0f}",
         f"{big.fallback_ms / statistics.median(big.add_full + big.record_full):.2f}"],
        [f"{n}: domain-add API call, p50 / p99 ms (vs {small.domains} domains)",
         p50_p99(big.add_api), p50_p99(small.add_api), ratio(big.add_api, small.add_api)],
        [f"{n}: record-change API call, p50 / p99 ms (vs {small.domains} domains)",
         p50_p99(big.record_api), p50_p99(small.record_api),
         ratio(big.record_api, small.record_api)],
        [f"{n}: node 1 long-poll answer (manifest), p50 / p99 ms (vs {small.domains} domains)",
         p50_p99(big.poll_first), p50_p99(small.poll_first),
         ratio(big.poll_first, small.poll_first)],
        [f"{n}: node 2 long-poll answer, p50 / p99 ms (vs {small.domains} domains)",
         p50_p99(big.poll_second), p50_p99(small.poll_second),
         ratio(big.poll_second, small.poll_second)],
        [f"{n}: objects answer (the new objects), p50 / p99 ms (vs {small.domains} domains)",
         p50_p99(big.objects), p50_p99(small.objects), ratio(big.objects, small.objects)],
        [f"{n}: full garbage collections (not the bench's): count, total ms (vs {small.domains})",
         f"{len(big.collections)}, {sum(big.collections):,.0f}",
         f"{len(small.collections)}, {sum(small.collections):,.0f}", "-"],
        [f"{n}: the first build (cold: keys decrypted), ms (vs {small.domains} domains)",
         f"{big.first_ms:,.0f}", f"{small.first_ms:,.0f}", f"{big.first_ms / small.first_ms:.0f}"],
        [f"{n}: RSS MiB after the first build and poll (vs {small.domains} domains)",
         f"{big.rss_built:,.0f}", f"{small.rss_built:,.0f}",
         f"{big.rss_built / small.rss_built:.2f}"],
        [f"{n}: RSS MiB at the end, the reference's caches too (vs {small.domains} domains)",
         f"{big.rss:,.0f}", f"{small.rss:,.0f}", f"{big.rss / small.rss:.2f}"],
    ]  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=10_000, help="the large size (N)")
    ap.add_argument("--reference-domains", type=int, default=10, help="the small size")
    ap.add_argument("--changes", type=int, default=20, help="changes per size (half adds)")
    ap.add_argument("--state", type=Path, default=None,
                    help="keep the N-domain home here (made once, copied afterwards)")  # fmt: skip
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 10 and 200 domains, 4 changes")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.domains, args.changes, args.state = 200, 4, None
    run = BenchRun("snapshot")
    rows: list[list[str]] = []
    loads: list[str] = []
    try:
        with signals_raise():
            figures: list[Figures] = []
            for size in (args.reference_domains, args.domains):
                keep = args.state if size == args.domains else None
                home = prepared(run, size, keep)
                loads.append(load())
                f = measure(home, args.changes)
                shutil.rmtree(home, ignore_errors=True)
                log(f"{f.domains:,} domains: build from parts {p50_p99(f.add_build)} (add), "
                    f"{p50_p99(f.record_build)} (record); full {p50_p99(f.add_full)}; "
                    f"load {f.loads[-1] if f.loads else load()}")  # fmt: skip
                figures.append(f)
                loads += f.loads
            rows = rows_for(figures[1], figures[0])
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    print(f"load average (1, 5, 15 min) during the changes: {loads[0]} at the start, "
          f"{loads[-1]} at the end")  # fmt: skip
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
