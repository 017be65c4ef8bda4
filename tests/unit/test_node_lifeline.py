"""The agent's state lock (one holder, its pid, never inherited) and processes bound to the
life of the process that started them (``edgeplane.node.lifeline``)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeplane.node.agent.lock import LockHeld, PidLock, holder, state_lock


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return False


def test_one_holder_named_by_pid(tmp_path: Path) -> None:
    first = state_lock(tmp_path / "edge" / "n1")
    first.acquire()
    try:
        assert first.path.read_text().strip() == str(os.getpid())
        assert holder(first.path) == os.getpid()
        second = state_lock(tmp_path / "edge" / "n1")  # another open file: flock says no
        with pytest.raises(LockHeld) as refused:
            second.acquire()
        assert refused.value.pid == os.getpid()
        assert f"pid {os.getpid()}" in str(refused.value)
        assert first.path.read_text().strip() == str(os.getpid())  # the refusal wrote nothing
        with state_lock(tmp_path / "edge" / "n2") as other:  # another node: its own lock
            assert other.held
    finally:
        first.release()
    assert holder(first.path) is None
    with state_lock(tmp_path / "edge" / "n1") as again:
        assert again.held


def test_the_lock_is_not_inherited(tmp_path: Path) -> None:
    lock = PidLock(tmp_path / "agent.lock")
    lock.acquire()
    try:
        assert lock._fd is not None
        assert fcntl.fcntl(lock._fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        # the child lists its own descriptors once it runs the new program (listing another
        # process's from here could catch it between fork and exec, with the parent's still open)
        child = subprocess.run(
            ["ls", "-l", "/proc/self/fd/"], close_fds=False, capture_output=True, check=True
        )
        assert "/dev/" in child.stdout.decode() or "pipe:" in child.stdout.decode()
        assert str(lock.path) not in child.stdout.decode()
    finally:
        lock.release()


def test_a_dead_holder_leaves_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "agent.lock"
    code = f"""
        import os, signal
        from pathlib import Path
        from edgeplane.node.agent.lock import PidLock
        PidLock(Path({str(path)!r})).acquire()
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True)
    assert run.returncode == -9
    assert path.read_text().strip() == run.stdout.decode().strip()  # its pid stays...
    assert holder(path) is None  # ...but nobody holds the lock
    PidLock(path).acquire()


def _run_bound(body: str) -> list[int]:
    """Run ``body`` in a fresh interpreter that spawns bound ``sleep`` children and prints
    their pids; the pids."""
    code = "import os, signal, threading, time\nfrom edgeplane.node.lifeline import spawn\n"
    run = subprocess.run(
        [sys.executable, "-c", code + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [int(word) for word in run.stdout.split()]


def test_bound_children_end_with_the_process_however_it_ends() -> None:
    pids = _run_bound("""
        child = spawn(["sleep", "30"], death_signal=signal.SIGTERM)
        print(child.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert len(pids) == 1
    assert wait_gone(pids[0], 5), "the child outlived its SIGKILLed parent"


def test_bound_children_outlive_the_thread_that_asked() -> None:
    """The parent-death signal fires when the *thread* that forked ends: spawn forks from a
    thread that lives as long as the process, so a worker thread that ends changes nothing."""
    pids = _run_bound("""
        found = []
        worker = threading.Thread(
            target=lambda: found.append(spawn(["sleep", "30"], death_signal=signal.SIGTERM))
        )
        worker.start()
        worker.join()
        time.sleep(0.3)
        print(found[0].pid, int(found[0].poll() is None), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child, alive_after_thread = pids
    assert alive_after_thread == 1, "the child ended with the thread that asked for it"
    assert wait_gone(child, 5)
