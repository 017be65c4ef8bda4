"""The local backup target (a folder of this machine) and the target specs."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeplane.backup.errors import BackupError
from edgeplane.backup.targets import (
    KINDS,
    LocalTarget,
    SftpTarget,
    Target,
    check_name,
    parse_target,
    parse_targets,
    split_specs,
)


def _file(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(bytes((i * 31 + seed) % 251 for i in range(size)))
    return path


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    return LocalTarget(tmp_path / "store" / "backups")


def test_round_trip_list_size_delete(target: LocalTarget, tmp_path: Path) -> None:
    assert isinstance(target, Target)
    assert target.list() == []  # the folder does not exist yet
    payload = _file(tmp_path / "payload", 3 * 1024 * 1024 + 17)
    target.put(payload, "full-20261205T053000Z-1a2b3c.backup")
    (tmp_path / "m.json").write_text('{"id": "full-20261205T053000Z-1a2b3c"}')
    target.put(tmp_path / "m.json", "full-20261205T053000Z-1a2b3c.json")

    # The folder is created 0700, files are 0600.
    assert stat.S_IMODE(target.path.stat().st_mode) == 0o700
    stored = target.path / "full-20261205T053000Z-1a2b3c.backup"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600

    assert target.list() == [
        "full-20261205T053000Z-1a2b3c.backup",
        "full-20261205T053000Z-1a2b3c.json",
    ]
    assert target.size("full-20261205T053000Z-1a2b3c.backup") == 3 * 1024 * 1024 + 17
    assert target.read_text("full-20261205T053000Z-1a2b3c.json").startswith('{"id"')

    out = tmp_path / "restore" / "deep" / "copy"
    target.get("full-20261205T053000Z-1a2b3c.backup", out)
    assert out.read_bytes() == payload.read_bytes()

    # put replaces an existing file.
    target.put(_file(tmp_path / "other", 10, seed=5), "full-20261205T053000Z-1a2b3c.backup")
    assert stored.read_bytes() == (tmp_path / "other").read_bytes()

    target.delete("full-20261205T053000Z-1a2b3c.backup")
    target.delete("full-20261205T053000Z-1a2b3c.backup")  # missing is fine
    assert target.list() == ["full-20261205T053000Z-1a2b3c.json"]
    assert not [p for p in target.path.iterdir() if p.name.startswith(".")]


def test_list_skips_temporary_files_and_folders(target: LocalTarget, tmp_path: Path) -> None:
    target.put(_file(tmp_path / "a", 3), "a.json")
    (target.path / ".a.json.part-1234").write_bytes(b"partial")
    (target.path / "sub").mkdir()
    assert target.list() == ["a.json"]


def test_missing_file_errors_name_target_and_reason(target: LocalTarget, tmp_path: Path) -> None:
    target.put(_file(tmp_path / "a", 3), "a.json")
    with pytest.raises(BackupError, match=r"'local'.*cannot read nope\.json: no such file"):
        target.get("nope.json", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(BackupError, match="no such file"):
        target.size("nope.json")
    with pytest.raises(BackupError, match="no such file"):
        target.read_text("nope.json")
    with pytest.raises(BackupError, match=r"cannot read .*missing-source"):
        target.put(tmp_path / "missing-source", "b.json")


def test_read_text_refuses_binary(target: LocalTarget, tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00garbage")
    target.put(tmp_path / "bin", "bin.json")
    with pytest.raises(BackupError, match="not UTF-8"):
        target.read_text("bin.json")


@contextlib.contextmanager
def file_size_limit(limit: int = 1024 * 1024) -> Iterator[None]:
    """Writes beyond ``limit`` bytes fail with EFBIG (RLIMIT_FSIZE, SIGXFSZ ignored) in this
    process: a real write failure in the middle of a file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_failed_put_leaves_no_partial_file(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t")
    old = _file(tmp_path / "old", 1000, seed=1)
    big = _file(tmp_path / "big", 3 * 1024 * 1024, seed=2)
    target.put(old, "x.backup")

    with file_size_limit():
        with pytest.raises(BackupError, match=r"'local'.*cannot store x\.backup: file too large"):
            target.put(big, "x.backup")
        with pytest.raises(BackupError, match="file too large"):
            target.put(big, "y.backup")

    # The old version is intact, nothing under the new name, no temporary file left.
    assert (target.path / "x.backup").read_bytes() == old.read_bytes()
    assert sorted(os.listdir(target.path)) == ["x.backup"]
    assert target.list() == ["x.backup"]


def test_failed_get_leaves_no_partial_file(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t")
    target.put(_file(tmp_path / "big", 3 * 1024 * 1024), "x.backup")
    dest = tmp_path / "out"
    dest.mkdir()
    with file_size_limit(), pytest.raises(BackupError, match=r"cannot copy x\.backup .*too large"):
        target.get("x.backup", dest / "x")
    assert os.listdir(dest) == []


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    target = LocalTarget(blocker / "backups")
    with pytest.raises(BackupError, match=r"'local'.*cannot create the folder"):
        target.put(_file(tmp_path / "a", 3), "a.json")


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "../x", "a/b", "a..b", "..", "/abs", "sp ace", "x\n", "é.json", "a" * 201],
)
def test_invalid_names_are_refused(target: LocalTarget, tmp_path: Path, name: str) -> None:
    src = _file(tmp_path / "a", 3)
    with pytest.raises(BackupError, match="invalid backup file name"):
        check_name(name)
    with pytest.raises(BackupError, match="invalid backup file name"):
        target.put(src, name)
    for call in (target.size, target.read_text, target.delete):
        with pytest.raises(BackupError, match="invalid backup file name"):
            call(name)
    with pytest.raises(BackupError, match="invalid backup file name"):
        target.get(name, tmp_path / "out")
    assert not target.path.exists() or target.list() == []


def test_valid_names() -> None:
    for name in ["full-20261205T053000Z-1a2b3c.backup", "a", "x_y.json", "A1.tar.gz"]:
        assert check_name(name) == name


# --------------------------------------------------------------------------- specs


def test_parse_local_specs(tmp_path: Path) -> None:
    t = parse_target(str(tmp_path / "b"))
    assert isinstance(t, LocalTarget)
    assert (t.name, t.kinds, t.path) == ("local", KINDS, tmp_path / "b")
    assert t.url == (tmp_path / "b").as_uri()

    t = parse_target(f"file://{tmp_path}/my%20dir?name=region-2&kinds=full")
    assert isinstance(t, LocalTarget)
    assert (t.name, t.kinds, t.path) == ("region-2", frozenset({"full"}), tmp_path / "my dir")

    t = parse_target("file://localhost/srv/b?kinds=full,incremental")
    assert isinstance(t, LocalTarget)
    assert t.kinds == frozenset({"full", "incremental"})

    t = parse_target("relative/dir")
    assert isinstance(t, LocalTarget)
    assert t.path == Path.cwd() / "relative/dir"


def test_parse_sftp_spec() -> None:
    t = parse_target(
        "sftp://backup@dr.example.net:2222/srv/edgeplane/../backups/"
        "?identity=/etc/edgeplane/id_ed25519&known_hosts=/etc/edgeplane/known_hosts"
        "&name=offsite&kinds=full,incremental&timeout=3&passphrase_env=BACKUP_KEY_PASS"
    )
    assert isinstance(t, SftpTarget)
    assert (t.host, t.port, t.user, t.path) == ("dr.example.net", 2222, "backup", "/srv/backups")
    assert t.identity == Path("/etc/edgeplane/id_ed25519")
    assert t.known_hosts == Path("/etc/edgeplane/known_hosts")
    assert (t.timeout, t.passphrase_env) == (3.0, "BACKUP_KEY_PASS")
    assert (t.name, t.kinds) == ("offsite", frozenset({"full", "incremental"}))
    # The display form holds no parameters (paths of keys, variable names).
    assert t.url == "sftp://backup@dr.example.net:2222/srv/backups"

    t6 = parse_target("sftp://[2001:db8::5]/b")
    assert isinstance(t6, SftpTarget)
    assert (t6.host, t6.port, t6.kinds) == ("2001:db8::5", 22, KINDS)
    assert t6.url.endswith("@[2001:db8::5]/b")
    assert t6.known_hosts == Path("~/.ssh/known_hosts").expanduser()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("s3://AKIAXXXX:verysecret@bucket/x", "unsupported backup target scheme 's3'"),
        ("rsync://host/x", "unsupported backup target scheme 'rsync'"),
        ("http:x", "unsupported backup target scheme 'http'"),
        ("", "empty backup target"),
        ("file://otherhost/x", "a host .* is not allowed"),
        ("file:///x?name=Bad Name", "invalid target name"),
        ("file:///x?kinds=full,weekly", "invalid kinds: 'weekly'"),
        ("file:///x?kinds=", "invalid kinds: at least one"),
        ("file:///x?colour=blue", "unknown parameter 'colour'"),
        ("sftp://u:hunter2@host/x", "passwords in the URL are not supported"),
        ("sftp://host", "absolute path"),
        ("sftp:///x", "a host is required"),
        ("sftp://host:99999/x", "invalid port"),
        ("sftp://host/x?timeout=soon", "invalid timeout 'soon'"),
        ("sftp://host/x?timeout=0", "invalid timeout 0"),
        ("sftp://host/x?identity=/k&identity=/j", "'identity' given twice"),
        ("sftp://host/x?password=hunter2", "unknown parameter 'password'"),
        ("sftp://host/x?passphrase_env=not-a-name", "invalid passphrase_env"),
        ("sftp://host/x#frag", "fragment"),
        ("sftp://a%20b@host/x", "invalid user 'a b'"),
    ],
)
def test_parse_target_errors(spec: str, message: str) -> None:
    with pytest.raises(BackupError, match=message) as info:
        parse_target(spec)
    assert "verysecret" not in str(info.value)
    assert "hunter2" not in str(info.value)


def test_parse_targets(tmp_path: Path) -> None:
    text = (
        f"{tmp_path}/a, sftp://u@h/x?kinds=full,incremental&name=offsite\n"
        f"  file://{tmp_path}/c?name=region-2&kinds=full,config,{tmp_path}/d?x"
    )
    assert split_specs(text) == [
        f"{tmp_path}/a",
        "sftp://u@h/x?kinds=full,incremental&name=offsite",
        f"file://{tmp_path}/c?name=region-2&kinds=full,config",
        f"{tmp_path}/d?x",
    ]
    targets = parse_targets(
        f"{tmp_path}/a,sftp://u@h/x?kinds=full,incremental "
        f"file://{tmp_path}/c?name=region-2&kinds=full"
    )
    assert [t.name for t in targets] == ["local", "offsite", "region-2"]
    assert [t.kinds for t in targets] == [
        KINDS,
        frozenset({"full", "incremental"}),
        frozenset({"full"}),
    ]
    assert parse_targets("  ") == []


def test_parse_targets_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="duplicate backup target name 'local'"):
        parse_targets(f"{tmp_path}/a {tmp_path}/b")
    with pytest.raises(BackupError, match="duplicate backup target name 'offsite'"):
        parse_targets("sftp://u@h/x, sftp://u@h2/y?kinds=full")
    with pytest.raises(BackupError, match="unsupported backup target scheme 'ftp'"):
        parse_targets(f"{tmp_path}/a ftp://h/x")
