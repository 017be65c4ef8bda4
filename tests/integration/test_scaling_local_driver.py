"""The scaling groups' local driver (``edgeplane.scaling.drivers.local``) with real processes:
HTTP origins that serve on the ports it picks, exits and their statuses, SIGTERM then SIGKILL
of the whole process group, a driver object made afresh over the same folder (a control-plane
restart) and a pid the kernel gave to another process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeplane.scaling.drivers import KINDS, driver_for
from edgeplane.scaling.drivers.base import DriverError, Instance, InstanceSpec
from edgeplane.scaling.drivers.cloud import CloudDriver
from edgeplane.scaling.drivers.local import LocalDriver, group_path, proc_stat

pytestmark = [pytest.mark.integration, pytest.mark.serial]
GROUP = "default/web"
OTHER = "default/other"
HTTP = f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1"
PY = sys.executable


def spec(name: str, command: str = HTTP, group: str = GROUP, **extra: Any) -> InstanceSpec:
    return InstanceSpec(group=group, name=name, template={"command": command, **extra})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "scaling"


@pytest.fixture
def driver(root: Path) -> Iterator[LocalDriver]:
    made = LocalDriver(root)
    yield made
    made.stop_all(grace_s=0.5)
    sweeper = LocalDriver(root)  # whatever another driver object of the test left
    for group in (GROUP, OTHER):
        for instance in sweeper.list(group):
            sweeper.delete(group, instance.name, grace_s=0.5)


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat.state != "Z"


def log_of(instance: Instance) -> str:
    return Path(instance.extra["log"]).read_text()


def test_two_origins_serve_and_one_is_deleted(driver: LocalDriver, root: Path) -> None:
    a = driver.create(spec("web-a"))
    b = driver.create(spec("web-b"))
    assert a.state == b.state == "running" and a.port != b.port
    assert a.host == "127.0.0.1" and a.ref == str(a.extra["pid"]) and a.started_at
    wait_for(lambda: answers(a.port) and answers(b.port), what="both origins to answer")
    assert [(i.name, i.state) for i in driver.list(GROUP)] == [
        ("web-a", "running"), ("web-b", "running")
    ]
    assert driver.list(OTHER) == []
    instance_dir = root / "default" / "web" / "web-a"
    record = json.loads((instance_dir / "instance.json").read_text())
    assert record["port"] == a.port and record["pid"] == int(a.ref)
    assert record["start_ticks"] == proc_stat(int(a.ref)).start_ticks  # type: ignore[union-attr]
    assert record["command"][-3:] == [str(a.port), "--bind", "127.0.0.1"]
    # the creation of a name that exists returns the instance, no second process
    assert driver.create(spec("web-a")).ref == a.ref

    assert driver.cpu_percent(GROUP, "web-a") is None
    for _ in range(20):
        answers(a.port)
    cpu = driver.cpu_percent(GROUP, "web-a")
    assert cpu is not None and 0 <= cpu < 400
    assert driver.cpu_percent(GROUP, "nobody") is None

    started = time.monotonic()
    driver.delete(GROUP, "web-a", grace_s=5)
    assert time.monotonic() - started < 4  # http.server ends on SIGTERM
    assert refused(a.port) and not instance_dir.exists() and not alive(int(a.ref))
    assert driver.get(GROUP, "web-a").state == "missing"
    driver.delete(GROUP, "web-a")  # again: nothing to do
    assert [i.name for i in driver.list(GROUP)] == ["web-b"] and answers(b.port)


def test_an_exit_and_its_status(driver: LocalDriver) -> None:
    driver.create(spec("quits", 'sh -c "echo one; echo two; echo three; echo four; exit 3" {port}'))
    wait_for(lambda: driver.get(GROUP, "quits").state == "exited", 5, "the exit")
    got = driver.get(GROUP, "quits")
    assert got.detail == "exited with status 3; last output:\ntwo\nthree\nfour"
    assert [i.state for i in driver.list(GROUP)] == ["exited"]

    driver.create(spec("killed", "sh -c 'kill -KILL $$' {port}"))
    wait_for(lambda: driver.get(GROUP, "killed").state == "exited", 5, "the kill")
    assert driver.get(GROUP, "killed").detail == "killed by signal SIGKILL"

    long_line = "x" * 500
    driver.create(spec("chatty", f"sh -c 'echo {long_line}; exit 0' {{port}}"))
    wait_for(lambda: driver.get(GROUP, "chatty").state == "exited", 5, "the exit")
    detail = driver.get(GROUP, "chatty").detail
    assert detail.startswith("exited with status 0; last output:\n") and detail.endswith("x" * 300)
    assert len(detail) == len("exited with status 0; last output:\n") + 300
    driver.delete(GROUP, "quits")
    assert driver.get(GROUP, "quits").state == "missing"


def test_commands_that_cannot_start(driver: LocalDriver, root: Path, tmp_path: Path) -> None:
    with pytest.raises(DriverError, match=r"cannot start '/nonexistent/origin': No such file"):
        driver.create(spec("a", "/nonexistent/origin --port {port}"))
    script = tmp_path / "origin.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    with pytest.raises(DriverError, match=r"cannot start '.*origin.sh': Permission denied"):
        driver.create(spec("b", f"{script} {{port}}"))
    with pytest.raises(DriverError, match="the directory /nonexistent does not exist"):
        driver.create(spec("c", HTTP, cwd="/nonexistent"))
    with pytest.raises(DriverError, match="port"):
        driver.create(spec("d", "sleep 10"))  # no {port}: refused by the template's model
    with pytest.raises(DriverError, match="invalid instance name"):
        driver.create(spec("Not_DNS"))
    assert driver.list(GROUP) == []
    assert not any((root / "default" / "web").glob("*"))


def test_env_cwd_and_placeholders(driver: LocalDriver, root: Path, tmp_path: Path) -> None:
    command = """sh -c 'echo "$EP_ADDR $EP_NAME $PWD"; exec sleep 30' {name}-{port}"""
    env = {"EP_ADDR": "{host}:{port}", "EP_NAME": "{name}"}
    got = driver.create(spec("env-a", command, env=env))
    wait_for(lambda: log_of(got).strip() != "", 5, "the output")
    instance_dir = root / "default" / "web" / "env-a"
    assert log_of(got).split() == [f"127.0.0.1:{got.port}", "env-a", str(instance_dir)]
    assert got.extra["command"][-1] == f"env-a-{got.port}"

    other = driver.create(spec("env-b", command, cwd=str(tmp_path), env={"EP_NAME": "{name}"}))
    wait_for(lambda: log_of(other).strip() != "", 5, "the output")
    assert log_of(other).split() == ["env-b", str(tmp_path)]


def test_sigterm_ignored_is_sigkilled_with_its_group(driver: LocalDriver) -> None:
    # sh ignores SIGTERM, and so does its child (an ignored signal stays ignored in children)
    command = "sh -c 'trap \"\" TERM; sleep 300 & echo child $!; wait' {port}"
    got = driver.create(spec("stubborn", command))
    wait_for(lambda: "child" in log_of(got), 5, "the child")
    child = int(log_of(got).split()[1])
    assert alive(child) and alive(int(got.ref))
    started = time.monotonic()
    driver.delete(GROUP, "stubborn", grace_s=1.0)
    took = time.monotonic() - started
    assert 1.0 <= took < 4, took
    assert not alive(int(got.ref)) and not alive(child)
    assert driver.get(GROUP, "stubborn").state == "missing"


def test_a_restarted_control_plane_adopts_and_deletes(driver: LocalDriver, root: Path) -> None:
    made = driver.create(spec("web-a"))
    gone = driver.create(spec("web-b"))
    wait_for(lambda: answers(made.port), what="the origin")

    after = LocalDriver(root)  # the control plane restarted: no child of its own
    got = after.get(GROUP, "web-a")
    assert (got.state, got.ref, got.port) == ("running", made.ref, made.port)
    assert [i.state for i in after.list(GROUP)] == ["running", "running"]
    assert after.cpu_percent(GROUP, "web-a") is None
    time.sleep(0.05)
    assert after.cpu_percent(GROUP, "web-a") is not None

    os.kill(int(gone.ref), signal.SIGKILL)  # dies; its parent (the first driver) reaps it
    wait_for(lambda: driver.get(GROUP, "web-b").state == "exited", 5, "the exit")
    assert after.get(GROUP, "web-b").detail.startswith("exited (status unknown)")
    assert driver.get(GROUP, "web-b").detail.startswith("killed by signal SIGKILL")

    after.delete(GROUP, "web-a", grace_s=5)
    assert refused(made.port) and after.get(GROUP, "web-a").state == "missing"
    after.delete(GROUP, "web-b")
    assert after.list(GROUP) == [] and driver.list(GROUP) == []


def test_a_reused_pid_is_not_the_instance(driver: LocalDriver, root: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        folder = root / "default" / "web" / "web-a"
        folder.mkdir(parents=True)
        ticks = proc_stat(stranger.pid).start_ticks  # type: ignore[union-attr]
        record = {"pid": stranger.pid, "port": 1, "host": "127.0.0.1", "start_ticks": ticks - 1,
                  "command": ["x"], "created_at": "2026-01-01T00:00:00+00:00"}
        (folder / "instance.json").write_text(json.dumps(record))
        got = driver.get(GROUP, "web-a")
        assert got.state == "exited" and got.detail == "exited (status unknown)"
        assert driver.cpu_percent(GROUP, "web-a") is None
        driver.delete(GROUP, "web-a", grace_s=0.5)  # never signals the stranger
        assert stranger.poll() is None and not folder.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_all(driver: LocalDriver, root: Path) -> None:
    sleeper = driver.create(spec("web-a"))
    stubborn = driver.create(spec(
        "web-b", f"{PY} -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)' {port}", stop_grace_s=1.0
    ))
    other = driver.create(spec("web-c", group=OTHER))
    wait_for(lambda: log_of(stubborn).strip() == "1", 10, "the handler")
    pids = [int(i.ref) for i in (sleeper, stubborn, other)]
    started = time.monotonic()
    driver.stop_all()
    assert time.monotonic() - started < 4  # all at once: one grace period, not the sum
    assert not any(alive(pid) for pid in pids)
    assert driver.list(GROUP) == driver.list(OTHER) == []


def test_one_create_of_a_name_at_a_time(driver: LocalDriver) -> None:
    made: list[Instance] = []
    threads = [
        threading.Thread(target=lambda: made.append(driver.create(spec("web-a"))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({i.ref for i in made}) == 1 and len(driver.list(GROUP)) == 1


def test_group_paths() -> None:
    assert group_path("default/web") == Path("default/web")
    assert group_path("p/../x") == Path("p/%2E%2E/x")
    assert group_path("a b/é") == Path("a%20b/%C3%A9")
    assert group_path("p/%2E") != group_path("p/.")
    for bad in ("", "p/", "/x", "p//x"):
        with pytest.raises(DriverError):
            group_path(bad)


def test_registry(root: Path) -> None:
    assert KINDS == ("local", "cloud")
    local = driver_for("local", root=root)
    assert isinstance(local, LocalDriver) and driver_for("local", root=root) is local
    local.bind(GROUP, {"command": HTTP})  # the cloud driver's need; nothing to do here
    assert driver_for("local", root=root.parent / "elsewhere") is not local
    cloud = driver_for("cloud", root=root)
    assert isinstance(cloud, CloudDriver) and driver_for("cloud", root=root) is cloud
    assert cloud.state_dir == root.resolve() / ".cloud"
    assert driver_for("cloud", root=root.parent / "elsewhere") is not cloud
    with pytest.raises(DriverError, match="unknown driver 'docker'"):
        driver_for("docker", root=root)


def test_a_bare_program_is_found_beside_the_running_python_too(tmp_path: Path) -> None:
    """``edgeplane demo-origin --port {port}`` starts even when the control plane's PATH
    lacks the virtual environment's bin (``python -m edgeplane up``)."""
    from edgeplane.scaling.drivers.local import resolve_program

    beside = Path(sys.executable).parent / "edgeplane"
    if not beside.exists():
        pytest.skip("no edgeplane script beside this Python")
    assert resolve_program("edgeplane", "/nonexistent") == str(beside)
    assert resolve_program("./edgeplane", "/nonexistent") == "./edgeplane"
    assert resolve_program("no-such-program-here", "/nonexistent") == "no-such-program-here"
