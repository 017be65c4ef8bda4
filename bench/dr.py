"""Disaster recovery: backups and restores of the control plane at 10,000 domains, and the
time a DR config takes to move traffic to its backup data center.

Run from the repository root::

    .venv/bin/python bench/dr.py [--quick] [--domains 10000] [--runs 5] [--state DIR]
        [--markdown]

**Backups** (``edgeplane.backup``, in process): for each size (10 domains, the reference, and
``--domains`` N), a control-plane home (SQLite) with two edge nodes and N domains added as the
API adds them, each with its zone and records and its certificate from the internal CA (the
state ``bench/snapshot.py`` makes; ``--state DIR`` keeps the N-domain home to copy next time).
Then, with a second directory as the off-site target: a full backup (the online copy, packed,
encrypted, stored twice), one domain added, an incremental, the verification of the
incremental (both copies' checksums, the chain restored into a scratch database and checked),
and a restore onto a fresh home from the off-site copies alone. Times and sizes, each beside
the 10-domain figure.

**Failover** (real processes: ``edgeplane up``, an edge node with nginx, one origin process in
each data center): a load balancer whose backends are servers of two data centers and a DR
config over them (automatic). ``--runs`` times: a client loop of GETs through the edge, the
primary's origin killed; the failover time is from the kill to the first answer from the
backup data center's origin, and the monitor's episode (detected -> served) is read from
``GET .../dr-configs/{id}/events``; failed requests counted; then the primary comes back and
fails back before the next run. Printed: p50 and max over the runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.append(str(_HERE))  # after site-packages: bench/dns.py must not hide dnspython

from common import BenchRun, log, pct, signals_raise, table  # noqa: E402
from snapshot import prepared  # noqa: E402


@dataclass
class BackupFigures:
    domains: int
    db_bytes: int = 0
    full_s: float = 0.0
    full_bytes: int = 0
    incremental_s: float = 0.0
    incremental_bytes: int = 0
    verify_s: float = 0.0
    restore_s: float = 0.0


def backups(run: BenchRun, size: int, keep: Path | None) -> BackupFigures:
    from edgeplane.backup import create, restore, schedule
    from edgeplane.secrets import SecretBox
    from edgeplane.services import domains
    from edgeplane.settings import Settings
    from edgeplane.store.actor import LOCAL
    from edgeplane.store.db import Database

    home = prepared(run, size, keep)
    offsite = run.tmp / f"offsite-{size}"
    settings = Settings.from_env(home=home, backup_targets=f"file://{offsite}?name=offsite")
    db = Database(settings.effective_database_url, secrets=SecretBox.from_settings(settings))
    f = BackupFigures(size, db_bytes=(home / "edgeplane.db").stat().st_size)
    try:
        started = time.monotonic()
        full = create.create(db, settings, "full")
        f.full_s = time.monotonic() - started
        assert full is not None
        f.full_bytes = full.manifest.size
        with db.transaction(LOCAL, "default") as tx:
            domains.add(tx, {"domain": f"after-full.{size}.localhost"}, settings)
        started = time.monotonic()
        incr = create.create(db, settings, "incremental")
        f.incremental_s = time.monotonic() - started
        assert incr is not None and incr.manifest.kind == "incremental"
        f.incremental_bytes = incr.manifest.size
        started = time.monotonic()
        report = schedule.verify_one(db, settings, incr.manifest.id)
        f.verify_s = time.monotonic() - started
        assert report["ok"], report
    finally:
        db.dispose()
    key = run.tmp / f"backup-{size}.key"
    shutil.copyfile(home / "backup.key", key)
    fresh = Settings.from_env(home=run.tmp / f"restored-{size}",
                              backup_targets=f"file://{offsite}?name=offsite")  # fmt: skip
    started = time.monotonic()
    done = restore.restore(fresh, key_file=key)
    f.restore_s = time.monotonic() - started
    assert done.backup == incr.manifest.id
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(fresh.home, ignore_errors=True)
    return f


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def secs(s: float) -> str:
    return f"{s:.2f} s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}" if b else "-"


def backup_rows(big: BackupFigures, small: BackupFigures) -> list[list[str]]:
    n = f"{big.domains:,} domains"
    ref = f"(vs {small.domains})"
    return [
        [f"{n}: database file {ref}", mb(big.db_bytes), mb(small.db_bytes),
         ratio(big.db_bytes, small.db_bytes)],
        [f"{n}: full backup, time {ref}", secs(big.full_s), secs(small.full_s),
         ratio(big.full_s, small.full_s)],
        [f"{n}: full backup, size (encrypted) {ref}", mb(big.full_bytes), mb(small.full_bytes),
         ratio(big.full_bytes, small.full_bytes)],
        [f"{n}: incremental after 1 change, time {ref}", secs(big.incremental_s),
         secs(small.incremental_s), ratio(big.incremental_s, small.incremental_s)],
        [f"{n}: incremental after 1 change, size {ref}", mb(big.incremental_bytes),
         mb(small.incremental_bytes), ratio(big.incremental_bytes, small.incremental_bytes)],
        [f"{n}: verify (restore + checks), time {ref}", secs(big.verify_s), secs(small.verify_s),
         ratio(big.verify_s, small.verify_s)],
        [f"{n}: restore from off-site, time {ref}", secs(big.restore_s), secs(small.restore_s),
         ratio(big.restore_s, small.restore_s)],
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=10_000)
    ap.add_argument("--reference-domains", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="failovers measured")
    ap.add_argument("--state", type=Path, default=None,
                    help="keep the N-domain home here (made once, copied afterwards)")  # fmt: skip
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 10 and 200 domains, 1 failover")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.domains, args.runs, args.state = 200, 1, None
    run = BenchRun("dr")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            small = backups(run, args.reference_domains, None)
            big = backups(run, args.domains, args.state)
            rows += backup_rows(big, small)
            rows += failover_rows(run, args.runs)
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    return run.status()


def failovers(run: BenchRun, runs: int) -> tuple[list[float], list[float], int, int]:
    """(kill -> backup answers, detected -> every node serves, failed requests, requests)."""
    from dr_sites import make_site, wait_ready
    from edge_agents import Api, new_agent
    from origins import origin_set
    from processes import clean_env, start_up

    env = clean_env(
        EDGEPLANE_DR_DETECT="1",
        EDGEPLANE_DR_FAILBACK_AFTER="2",
        EDGEPLANE_BACKUP_SCHEDULE="off",
    )
    cp = start_up(run.tmp / "cp-failover", env=env)
    run.cleanup.add(cp.stop)
    admin = Api(cp)
    run.cleanup.add(admin.close)
    agent = new_agent(cp, admin, run.tmp, "dr-bench").start()
    run.cleanup.add(agent.stop)
    times: list[float] = []
    episodes: list[float] = []
    failed = total = 0
    with origin_set() as origins:
        site = make_site(admin, origins, "drbench")
        wait_ready(site, [agent])
        last = 0
        for n in range(runs):
            took, switch, failures, sent, last = one_failover(site, [agent], origins, last)
            times.append(took)
            episodes.append(switch)
            failed, total = failed + failures, total + sent
            log(f"failover {n + 1}/{runs}: backup answered {took:.3f} s after the kill; "
                f"detected -> served {switch:.2f} s")  # fmt: skip
    return times, episodes, failed, total


def one_failover(
    site: Any, nodes: list[Any], origins: Any, last: int
) -> tuple[float, float, int, int, int]:
    """Kill the primary under traffic, wait for the backup and the episode, bring the primary
    back and wait for the failback: (kill -> backup answers, detected -> served, failed
    requests, requests, the failback's event id)."""
    from dr_sites import Traffic, served_event
    from edge_agents import wait_for

    backup = site.backup.name
    with Traffic(nodes, site.domain) as traffic:
        wait_for(lambda: sum(traffic.since(0).values()) > 40, 10, "traffic flows")
        killed = time.monotonic()
        for origin in site.primaries:
            origin.kill()
        first = wait_for(lambda: traffic.first(backup, killed), 60, "the backup answers")
        served = wait_for(lambda: served_event(site, "backup", last), 60, "the switch served")
        site.primaries = [origins.restart(o) for o in site.primaries]
        back = wait_for(lambda: served_event(site, "primary", served["id"]), 60, "failback")
        return (
            first - killed,
            float(served["detail"]["seconds"]["detected_to_served"]),
            len(traffic.failures),
            sum(traffic.since(0).values()),
            int(back["id"]),
        )


def failover_rows(run: BenchRun, runs: int) -> list[list[str]]:
    times, episodes, failed, total = failovers(run, runs)
    return [
        [f"failover: primary killed -> backup answers, p50 / max ({runs} runs)",
         f"{pct(times, 50):.3f} / {max(times):.3f} s", "-", "-"],
        ["failover: monitor detected -> every node serves the switch, p50 / max",
         f"{pct(episodes, 50):.2f} / {max(episodes):.2f} s", "-", "-"],
        ["failover: failed GETs during the runs (of all sent)", f"{failed} of {total}", "-", "-"],
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())


