"""The leftover-process check: what it counts as the run's, what it leaves alone."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leftovers import MARKER, Owner, ancestors, start_ticks, stat_fields


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_finds_what_the_scope_started_and_nothing_else(root: Path) -> None:
    me = os.getpid()
    scope = f"{os.environ.get(MARKER, 'x')}/leftovers-test"
    owner = Owner(
        marker=scope,
        roots=[root],
        since=start_ticks(me),
        exclude=frozenset(ancestors(me)),
    )
    bare = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    started = {
        "marked": subprocess.Popen(["sleep", "61"], env={**bare, MARKER: scope}, cwd="/"),
        "marked below": subprocess.Popen(
            ["sleep", "62"], env={**bare, MARKER: f"{scope}/bench-x-1"}, cwd="/"
        ),
        "cwd": subprocess.Popen(["sleep", "63"], env=bare, cwd=root),
        "argument": subprocess.Popen(
            ["sh", "-c", "sleep 64; :", str(root / "x")], env=bare, cwd="/"
        ),
        "child": subprocess.Popen(
            ["sh", "-c", "env -i sleep 65 & wait"], env={**bare, MARKER: scope}, cwd="/"
        ),
        "another scope's child": subprocess.Popen(
            ["sh", "-c", f"env {MARKER}=elsewhere sleep 68 & wait"],
            env={**bare, MARKER: scope},
            cwd="/",
        ),
        "another scope": subprocess.Popen(
            ["sleep", "66"], env={**bare, MARKER: f"{scope}-other"}, cwd=root
        ),
        "unrelated": subprocess.Popen(["sleep", "67"], env=bare, cwd="/"),
    }
    kids: list[int] = []
    try:
        time.sleep(0.3)  # the shells' children started
        shells = {p.pid for p in started.values()}
        kids += [
            int(e.name)
            for e in Path("/proc").iterdir()
            if e.name.isdigit() and (f := stat_fields(int(e.name))) and f[0] in shells
        ]
        found = {p.pid: p for p in owner.find()}
        pids = {name: p.pid for name, p in started.items()}
        for name in ("marked", "marked below", "cwd", "argument", "child"):
            assert pids[name] in found, (name, found)
        assert pids["another scope"] not in found
        assert pids["unrelated"] not in found
        assert me not in found and os.getppid() not in found
        # the shell's child has no environment at all: it counts as the shell's child
        assert any(p.cmdline == "sleep 65" and "started by" in p.why for p in found.values())
        # ... but not when it carries another run's marker
        assert not any(p.cmdline == "sleep 68" for p in found.values())
        killed = owner.kill()
        assert {p.pid for p in killed} >= {pids[n] for n in ("marked", "cwd", "argument")}
        assert owner.find() == []
        assert started["unrelated"].poll() is None
    finally:
        for pid in kids:  # the shells' children (one of them is nobody's to find)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in started.values():
            p.kill()
            p.wait()
