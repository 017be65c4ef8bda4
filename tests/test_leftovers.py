"""The leftover-process check: what it counts as the run's, what it leaves alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leftovers import MARKER, Owner, ancestors, start_ticks


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
        checkout=None,
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
        "another scope": subprocess.Popen(
            ["sleep", "66"], env={**bare, MARKER: f"{scope}-other"}, cwd=root
        ),
        "unrelated": subprocess.Popen(["sleep", "67"], env=bare, cwd="/"),
    }
    try:
        time.sleep(0.3)  # the shell's child started
        found = {p.pid: p for p in owner.find()}
        pids = {name: p.pid for name, p in started.items()}
        for name in ("marked", "marked below", "cwd", "argument", "child"):
            assert pids[name] in found, (name, found)
        assert pids["another scope"] not in found
        assert pids["unrelated"] not in found
        assert me not in found and os.getppid() not in found
        # the shell's child has no environment at all: it counts as the shell's child
        assert any(p.cmdline == "sleep 65" and "started by" in p.why for p in found.values())
        killed = owner.kill()
        assert {p.pid for p in killed} >= {pids[n] for n in ("marked", "cwd", "argument")}
        assert owner.find() == []
        assert started["unrelated"].poll() is None
    finally:
        for p in started.values():
            p.kill()
            p.wait()
