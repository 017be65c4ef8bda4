"""The API under concurrent load: ``bench/api.py --concurrency``.

Run from the repository root::

    .venv/bin/python bench/api.py --concurrency [--workers 1,2,4] [--replicas 2,3]
        [--backend sqlite|postgresql|both] [--duration 5] [--connections 16] [--domains 100]
        [--quick] [--markdown]

For each backend, a fresh database is migrated and given ``--domains`` domains (``*.test``)
through the service layer; then the real ``edgeplane serve`` (a child process, as an operator
starts it) is run with each ``--workers`` count in turn, and on PostgreSQL also as
``--replicas`` separate ``serve`` processes (one worker each) on their own ports sharing the
database and the home. Against each, wrk (closed loop: ``--connections`` keep-alive
connections, each sending its next request when the previous answer arrived) measures for
``--duration`` seconds, after one untimed second:

* ``GET /healthz`` (one ``SELECT 1``),
* ``GET /api/v1/infrastructure/domains/{d}`` (one domain, as the API's reads of one object),
* ``GET /api/v1/infrastructure/domains`` (a page: the first 100 domains, 145 KB of JSON),
* ``PATCH /api/v1/infrastructure/domains/{d}/records`` setting one A record of a domain
  chosen in turn (a write: a revision and an audit event each).

With replicas, one wrk per replica shares the connections and the latencies of all are merged
(each wrk dumps its whole latency histogram). The reference: a plain ASGI app answering a fixed
JSON body, served by uvicorn's own ``--workers N`` (the same HTTP stack, h11 on asyncio, with
nothing behind it), measured the same way: the ceiling of the stack on this machine.

Besides requests per second and latency, each row gives the CPU the API processes used
(cores: CPU seconds over wall seconds, every process of the ``serve`` trees), PostgreSQL's (its
server processes), and wrk's own (from its rusage): the generator must not be what limits.
After the writes the revision counter is checked to have moved by at least the number of
writes wrk saw succeed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
from common import BenchRun, log, signals_ignored

from edgeplane.model.domains import DomainCreate
from edgeplane.secrets import SecretBox
from edgeplane.services import domains
from edgeplane.services.access import ensure_admin_token
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.migrate import upgrade
from pgcluster import PostgresCluster, find_pg_bin

API = "/api/v1/infrastructure"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
AIM_RPS = 1000.0  # the aim for reads on this 2-core machine
AIM_P99_MS = 50.0

OPERATIONS = {
    "healthz": "GET /healthz",
    "domain": "GET /domains/{d}",
    "domains": "GET /domains (100)",
    "writes": "PATCH records",
    "floor": "GET / (plain ASGI)",
}

# One wrk process: requests of one kind, and at the end its counts and its latency quantiles
# at every 0.1 % (microseconds), so that the results of several wrk processes merge. (wrk's
# Lua API has no raw histogram: in Debian's wrk 4.1 ``latency[i]`` gives back ``i``.)
WRK_SCRIPT = r"""
local mode = os.getenv("EP_MODE")
local token = os.getenv("EP_TOKEN") or ""
local domains = tonumber(os.getenv("EP_DOMAINS") or "1")
local seed = tonumber(os.getenv("EP_SEED") or "0")
local counter = 0

wrk.method = "GET"
wrk.path = os.getenv("EP_PATH") or "/"
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

if mode == "patch" then
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    counter = counter + 1
    local n = seed * 100000 + counter
    local domain = string.format("bench-%05d.test", (seed * 37 + counter) % domains)
    local body = string.format(
      '{"set":[{"name":"load","type":"A","ttl":300,"values":["10.%d.%d.%d"]}]}',
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return wrk.format("PATCH", "/api/v1/infrastructure/domains/" .. domain .. "/records",
                      nil, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("EP-SUMMARY %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  local parts = {}
  for i = 1, 1000 do
    parts[#parts + 1] = string.format("%d", latency:percentile(i / 10))
  end
  io.write("EP-QUANTILES ", table.concat(parts, " "), "\n")
end
"""

FLOOR_APP = """
BODY = b'{"status":"ok","version":"0.1.0"}'


async def app(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
"""


# Processes and their CPU ---------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(roots: Sequence[int]) -> set[int]:
    """``roots`` and every live process below them."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (those gone are left out)."""
    out = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[p] - before.get(p, 0.0) for p in after)


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


@dataclasses.dataclass
class Served:
    """What is measured: ``edgeplane serve`` processes (or the reference's uvicorn)."""

    label: str
    urls: list[str]
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @property
    def pids(self) -> set[int]:
        return descendants([p.pid for p in self.processes])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
    env["EDGEPLANE_DATABASE_URL"] = database_url
    env["EDGEPLANE_BACKUP_SCHEDULE"] = "off"
    return env


def _wait_serving(served: Served, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(zip(served.urls, served.processes, served.logs, strict=True))
    with httpx.Client(timeout=2.0) as client:
        while pending:
            url, process, logfile = pending[0]
            if process.poll() is not None:
                tail = logfile.read_text()[-3000:] if logfile.exists() else ""
                raise RuntimeError(f"{served.label} exited during startup:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{served.label} did not answer within {timeout:.0f} s")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/healthz").status_code == 200:
                    pending.pop(0)
                    continue
            time.sleep(0.05)


def start_serve(
    tmp: Path,
    home: Path,
    database_url: str,
    workers: int,
    replicas: int,
    stack: contextlib.ExitStack,
) -> Served:
    """``replicas`` processes of ``edgeplane serve --workers N`` on ports of their own, the
    home and database shared; serving when this returns, stopped by ``stack``."""
    what = f"{replicas} replicas" if replicas > 1 else f"{workers} worker" + "s" * (workers > 1)
    served = Served(what, [], [], [])
    stack.callback(served.stop)
    for i in range(replicas):
        port = _free_port()
        logfile = tmp / f"serve-{workers}w-{replicas}r-{i}.log"
        with logfile.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgeplane", "serve", "--home", str(home),
                 "--port", str(port), "--workers", str(workers)],
                stdout=out, stderr=subprocess.STDOUT, env=_env(database_url),
                start_new_session=True,
            )  # fmt: skip
        served.urls.append(f"http://127.0.0.1:{port}")
        served.processes.append(process)
        served.logs.append(logfile)
    _wait_serving(served)
    return served


def start_floor(tmp: Path, workers: int, stack: contextlib.ExitStack) -> Served:
    """The reference: a plain ASGI app under ``uvicorn --workers N``, stopped by ``stack``."""
    app_dir = tmp / "floor"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "floor_app.py").write_text(FLOOR_APP)
    port = _free_port()
    logfile = tmp / f"floor-{workers}.log"
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(app_dir),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning", "--no-access-log", "--lifespan", "off"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    served = Served(f"uvicorn {workers}w", [f"http://127.0.0.1:{port}"], [process], [logfile])
    stack.callback(served.stop)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if client.get(served.urls[0] + "/").status_code == 200:
                    return served
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the reference did not start:\n{logfile.read_text()[-2000:]}")
            time.sleep(0.05)


# wrk -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Load:
    requests: int = 0
    seconds: float = 0.0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    # (microseconds, requests it stands for): each wrk's 1,000 quantiles, weighted by its count
    quantiles: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    wrk_cpu_s: float = 0.0
    api_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def percentile(self, p: float) -> float:
        """Milliseconds below which ``p`` % of the latencies lie: nearest rank over the merged
        quantiles (exactly wrk's own percentile for one wrk and ``p`` a multiple of 0.1)."""
        total = sum(weight for _, weight in self.quantiles)
        if not total:
            return math.nan
        wanted = total * p / 100 * (1 - 1e-9)
        seen = 0.0
        for us, weight in sorted(self.quantiles):
            seen += weight
            if seen >= wanted:
                return us / 1000
        return max(us for us, _ in self.quantiles) / 1000


WRK_SEEDS = itertools.count(1)  # wrk processes of the run: the values their writes set differ
SUMMARY = re.compile(r"^EP-SUMMARY (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", re.M)
QUANTILES = re.compile(r"^EP-QUANTILES (.*)$", re.M)


def run_wrk(
    script: Path,
    urls: list[str],
    env: dict[str, str],
    connections: int,
    seconds: int,
    watch: set[int],
    database: set[int],
) -> Load:
    """One wrk per URL at once, ``connections`` shared among them; the merged result, with
    the CPU the ``watch`` processes (the API) and the ``database`` ones used meanwhile."""
    per = [connections // len(urls) + (i < connections % len(urls)) for i in range(len(urls))]
    api_before, db_before = cpu_seconds(watch), cpu_seconds(database)
    started = time.perf_counter()
    procs = []
    for url, conns in zip(urls, per, strict=True):
        command = ["wrk", "-t1", f"-c{max(1, conns)}", f"-d{seconds}s", "--timeout", "10s"]
        seed = str(next(WRK_SEEDS))  # every write of the run sets a value of its own
        procs.append(
            subprocess.Popen(
                [*command, "-s", str(script), url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **env, "EP_SEED": seed},
            )
        )
    load = Load()
    for proc in procs:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        load.wrk_cpu_s += usage.ru_utime + usage.ru_stime
        summary, hist = SUMMARY.search(out), QUANTILES.search(out)
        if proc.returncode != 0 or summary is None or hist is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {err[-2000:]}\n{out[-2000:]}")
        requests, duration_us, *errors = (int(x) for x in summary.groups())
        load.requests += requests
        load.seconds = max(load.seconds, duration_us / 1e6)
        kinds = ("connect", "read", "write", "status", "timeout")
        for kind, count in zip(kinds, errors, strict=True):
            if count:
                load.errors[kind] += count
        values = [int(v) for v in hist.group(1).split()]
        load.quantiles += [(us, requests / len(values)) for us in values]
    load.wall_s = time.perf_counter() - started
    load.api_cpu_s = cpu_delta(api_before, cpu_seconds(watch))
    load.db_cpu_s = cpu_delta(db_before, cpu_seconds(database))
    return load


# One backend ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    backend: str
    setup: str
    op: str
    load: Load
    note: str = ""


def prepare_database(url: str, home: Path, count: int) -> str:
    """Migrate, make the admin token, add ``count`` domains; the token."""
    settings = Settings(home=home, database_url=url)
    db = Database(url, secrets=SecretBox.from_settings(settings))
    try:
        upgrade(db.engine)
        token = ensure_admin_token(db, home / "admin-token")
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            for i in range(count):
                domains.add(tx, DomainCreate(domain=f"bench-{i:05d}.test"), settings)
    finally:
        db.dispose()
    return token


def current_revision(url: str, home: Path) -> int:
    db = Database(url, secrets=SecretBox.from_settings(Settings(home=home, database_url=url)))
    try:
        return db.current_revision()
    finally:
        db.dispose()


def measure(
    backend: str,
    served: Served,
    script: Path,
    token: str,
    args: argparse.Namespace,
    database: set[int],
    url: str,
    home: Path,
    ops: Sequence[str] = ("healthz", "domain", "domains", "writes"),
) -> list[Row]:
    rows = []
    watch = served.pids
    for op in ops:
        env = {"EP_TOKEN": token, "EP_DOMAINS": str(args.domains)}
        if op == "writes":
            env["EP_MODE"] = "patch"
        else:
            env["EP_MODE"] = "get"
            env["EP_PATH"] = {
                "healthz": "/healthz",
                "domain": f"{API}/domains/bench-00000.test",
                "domains": f"{API}/domains",
            }.get(op, "/")
        if args.warmup:
            run_wrk(script, served.urls, env, args.connections, args.warmup, watch, database)
        revision = current_revision(url, home) if op == "writes" else 0
        load = run_wrk(script, served.urls, env, args.connections, args.duration, watch, database)
        note = ""
        if op == "writes":
            moved = current_revision(url, home) - revision
            succeeded = load.requests - load.errors["status"]
            if moved < succeeded:
                raise RuntimeError(f"{succeeded} writes answered 200, the revision moved {moved}")
            note = f"revision +{moved}"
        log(f"    {OPERATIONS[op]}: {load.rps:,.0f} req/s, p99 {load.percentile(99):.1f} ms")
        rows.append(Row(backend, served.label, op, load, note))
    return rows


def run_backend(
    backend: str, args: argparse.Namespace, script: Path, stack: contextlib.ExitStack
) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix=f"load-{backend}-"))
    stack.callback(shutil.rmtree, tmp, True)
    home = tmp / "home"
    home.mkdir(mode=0o700)
    database: set[int] = set()
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'edgeplane.db'}"
    else:
        cluster = PostgresCluster(tmp / "pg")
        stack.callback(cluster.stop)
        log("  starting PostgreSQL")
        cluster.start()
        url = cluster.create_database("edgeplane_load")
    token = prepare_database(url, home, args.domains)
    if backend == "postgresql":
        database = descendants([postmaster_pid(cluster)])
    rows: list[Row] = []
    setups = [(w, 1) for w in args.workers]
    if backend == "postgresql":
        if args.quick:  # PostgreSQL through the replicas only
            setups = []
        setups += [(1, r) for r in args.replicas]
    for workers, replicas in setups:
        served = start_serve(tmp, home, url, workers, replicas, stack)
        try:
            log(f"  {backend}, {served.label}:")
            if backend == "postgresql":  # the pool's connections opened since
                database = descendants([postmaster_pid(cluster)])
            rows += measure(backend, served, script, token, args, database, url, home)
        finally:
            served.stop()
    return rows


def run_floor(args: argparse.Namespace, script: Path, stack: contextlib.ExitStack) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="load-floor-"))
    stack.callback(shutil.rmtree, tmp, True)
    rows = []
    for workers in args.workers:
        served = start_floor(tmp, workers, stack)
        try:
            log(f"  reference, uvicorn --workers {workers}:")
            rows += measure("reference", served, script, "", args, set(), "", tmp, ("floor",))
        finally:
            served.stop()
    return rows


# Output --------------------------------------------------------------------------------------

HEADER = ["backend", "setup", "requests", "n", "req/s", "p50 ms", "p99 ms", "errors",
          "API CPU", "CPU ms/req", "DB CPU", "wrk CPU"]  # fmt: skip


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def cells(row: Row) -> list[str]:
    load = row.load
    wall = load.seconds or math.nan
    failed = ", ".join(f"{k} {v}" for k, v in sorted(load.errors.items())) or "0"
    return [
        row.backend,
        row.setup,
        OPERATIONS[row.op],
        f"{load.requests:,}",
        _f(load.rps, 0),
        _f(load.percentile(50), 1),
        _f(load.percentile(99), 1),
        failed,
        _f(load.api_cpu_s / wall, 2),
        _f(1000 * load.api_cpu_s / load.requests, 2) if load.requests else "-",
        _f(load.db_cpu_s / wall, 2) if row.backend == "postgresql" else "-",
        f"{100 * load.wrk_cpu_s / wall:.0f} %",
    ]


def render(rows: list[Row], markdown: bool) -> str:
    table = [cells(r) for r in rows]
    if markdown:
        out = ["| " + " | ".join(HEADER) + " |", "|---|---|---|" + "---:|" * (len(HEADER) - 3)]
        out += ["| " + " | ".join(r) + " |" for r in table]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [HEADER, *table]) for i in range(len(HEADER))]

    def line(cs: list[str]) -> str:
        return " | ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cs, widths, strict=True))
        )

    return "\n".join([line(HEADER), "-+-".join("-" * w for w in widths), *map(line, table)])


def verdict(rows: list[Row]) -> list[str]:
    """Per read, the best setup, and whether any met the aim."""
    lines = []
    for op in ("healthz", "domain", "domains"):
        candidates = [r for r in rows if r.op == op]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r.load.rps)
        met = [
            f"{r.backend} {r.setup}"
            for r in candidates
            if r.load.rps >= AIM_RPS and r.load.percentile(99) < AIM_P99_MS
        ]
        lines.append(
            f"{OPERATIONS[op]}: best {best.load.rps:,.0f} req/s (p99 "
            f"{best.load.percentile(99):,.1f} ms, {best.backend} {best.setup}); aim (>= "
            f"{AIM_RPS:,.0f} req/s with p99 < {AIM_P99_MS:.0f} ms) "
            + (f"met by {', '.join(met)}" if met else "not met")
        )
    return lines


def notes(args: argparse.Namespace, load_before: tuple[float, float, float]) -> list[str]:
    return [
        f"wrk: closed loop, {args.connections} keep-alive connections (one wrk thread per "
        f"target; with replicas the connections are spread over one wrk per replica), "
        f"{args.duration} s timed after {args.warmup} s untimed per row; latency from sending a "
        "request to its whole answer, percentiles by nearest rank over every request",
        f"{args.domains} domains; GET /domains answers the first page (up to 100); each write "
        "sets the A record `load` of the next domain (a revision, an audit event)",
        "API CPU / DB CPU: cores used (CPU seconds of every process of the serve trees / of "
        "PostgreSQL over the run's seconds); CPU ms/req: the API's CPU per answered request "
        "(what the machine's cores bound: 2 cores / 2 ms = 1,000 req/s at best); wrk CPU: the "
        "generator's own, % of one core",
        "reference: a plain ASGI app returning a fixed JSON body under uvicorn --workers N "
        "(the same HTTP stack, h11 on asyncio, no uvloop/httptools installed)",
        f"{os.cpu_count()} CPUs; load average when the run started "
        + " ".join(f"{x:.2f}" for x in load_before),
    ]


# Main ----------------------------------------------------------------------------------------


def _counts(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of counts") from None
    if not values or any(v < 1 or v > 64 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: counts between 1 and 64")
    return values


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/api.py --concurrency", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--workers", type=_counts, default=[1, 2, 4], help="default 1,2,4")
    parser.add_argument("--replicas", type=_counts, default=[2, 3], help="PostgreSQL; default 2,3")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=int, default=5, help="seconds timed per row")
    parser.add_argument("--warmup", type=int, default=1, help="seconds untimed before each row")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--no-reference", action="store_true", help="skip the plain ASGI rows")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the short mode the tests run: SQLite with 2 workers, PostgreSQL with 2 replicas, "
        "the reference with 2 workers; 1 s per row after 1 s of warm-up, 20 domains",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.replicas, args.duration, args.warmup, args.domains = [2], [2], 1, 1, 20
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.domains < 1:
        parser.error("--duration, --connections and --domains must be at least 1")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk; scripts/bootstrap --with-test)")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and find_pg_bin() is None:
        if args.backend == "postgresql":
            parser.error("PostgreSQL is not installed (scripts/bootstrap --with-test installs it)")
        log("PostgreSQL is not installed: SQLite only")
        backends.remove("postgresql")

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()
    run = BenchRun("api-load")
    script = run.tmp / "load.lua"
    script.write_text(WRK_SCRIPT)
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        for backend in backends:
            log(f"{backend}:")
            stack = contextlib.ExitStack()
            run.cleanup.add(stack.close)
            try:
                rows += run_backend(backend, args, script, stack)
            finally:
                with signals_ignored():
                    stack.close()
        if not args.no_reference:
            stack = contextlib.ExitStack()
            run.cleanup.add(stack.close)
            try:
                rows += run_floor(args, script, stack)
            finally:
                with signals_ignored():
                    stack.close()
    except KeyboardInterrupt:
        log("interrupted; everything started has been stopped")
        return 130
    finally:
        run.close()
    print("API under concurrent load (reads and writes per second)")
    print(render(rows, markdown=False), end="\n\n")
    for line in notes(args, load_before) + verdict(rows):
        print(f"  {line}")
    if args.markdown:
        print()
        print(render(rows, markdown=True))
    if args.quick:
        print("- short mode (--quick): 2 workers (SQLite), 2 replicas (PostgreSQL), 1 s per row")
    log(f"total {time.perf_counter() - started:.0f} s")
    return run.status()
