"""The off-site backup target (SFTP) against a real OpenSSH server on a host of its own (a
network namespace): uploads, downloads, listing, the remote folder made on demand, and the
refusals (a changed host key, an unknown host, a key the server does not accept, a server that
is down or silent) with messages that say why and hold no key material."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SshServer

from edgeplane.backup.errors import BackupError
from edgeplane.backup.targets import SftpTarget, Target, parse_target, parse_targets

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _payload(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _sftp(spec: str) -> SftpTarget:
    target = parse_target(spec)
    assert isinstance(target, SftpTarget)
    return target


@pytest.fixture
def target(sshd_host: SshServer, request: pytest.FixtureRequest) -> Iterator[SftpTarget]:
    t = _sftp(sshd_host.url(f"t-{request.node.name}"))
    yield t
    t.close()


def _no_secret(message: str, *keys: Path) -> None:
    """``message`` quotes none of the private or public keys' material."""
    assert "PRIVATE KEY" not in message
    for key in keys:
        private = "".join(
            line for line in key.read_text().splitlines() if not line.startswith("-----")
        )
        public = key.with_suffix(".pub").read_text().split()[1]
        for piece in (private[:40], private[-40:], public[:40], public[-40:]):
            assert piece not in message


def test_round_trip(sshd_host: SshServer, target: SftpTarget, tmp_path: Path) -> None:
    assert isinstance(target, Target)
    assert target.url == f"sftp://root@{sshd_host.address}:{sshd_host.port}{target.path}"
    remote_dir = Path(target.path)
    assert not remote_dir.exists()  # made on first use, mkdir -p
    assert target.list() == []
    assert remote_dir.is_dir()
    assert remote_dir.stat().st_mode & 0o777 == 0o700

    payload = _payload(tmp_path / "p", 3 * MiB + 5)
    started = time.monotonic()
    target.put(payload, "full-20261205T053000Z-1a2b3c.backup")
    (tmp_path / "m.json").write_text('{"id": "full-20261205T053000Z-1a2b3c"}\n')
    target.put(tmp_path / "m.json", "full-20261205T053000Z-1a2b3c.json")
    upload_s = time.monotonic() - started

    # The file landed on the server's filesystem, 0600, whole, with no temporary left.
    stored = remote_dir / "full-20261205T053000Z-1a2b3c.backup"
    assert stored.read_bytes() == payload.read_bytes()
    assert stored.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(remote_dir)) == [
        "full-20261205T053000Z-1a2b3c.backup",
        "full-20261205T053000Z-1a2b3c.json",
    ]
    assert target.list() == sorted(os.listdir(remote_dir))
    assert target.size("full-20261205T053000Z-1a2b3c.backup") == 3 * MiB + 5
    assert target.read_text("full-20261205T053000Z-1a2b3c.json").startswith('{"id"')

    started = time.monotonic()
    target.get("full-20261205T053000Z-1a2b3c.backup", tmp_path / "back" / "copy")
    download_s = time.monotonic() - started
    got = (tmp_path / "back" / "copy").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload.read_bytes()).digest()
    assert upload_s < 10 and download_s < 10, (upload_s, download_s)

    # A byte flipped at the server is what the next download returns (nothing cached).
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF
    stored.write_bytes(bytes(data))
    target.get("full-20261205T053000Z-1a2b3c.backup", tmp_path / "flipped")
    assert (tmp_path / "flipped").read_bytes() == bytes(data)

    # put replaces; delete removes, twice is fine.
    target.put(_payload(tmp_path / "q", 100), "full-20261205T053000Z-1a2b3c.backup")
    assert stored.read_bytes() == (tmp_path / "q").read_bytes()
    target.delete("full-20261205T053000Z-1a2b3c.backup")
    target.delete("full-20261205T053000Z-1a2b3c.backup")
    assert target.list() == ["full-20261205T053000Z-1a2b3c.json"]

    # Missing files and bad names: clear errors naming the target.
    with pytest.raises(BackupError, match=r"'offsite'.*cannot fetch nope\.backup: no such file"):
        target.get("nope.backup", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(BackupError, match="no such file"):
        target.size("nope.backup")
    with pytest.raises(BackupError, match="invalid backup file name"):
        target.put(payload, "../escape")
    assert not (remote_dir.parent / "escape").exists()


def test_temporary_files_are_not_listed(target: SftpTarget, tmp_path: Path) -> None:
    target.put(_payload(tmp_path / "a", 10), "a.json")
    Path(target.path, ".b.json.part-0000").write_bytes(b"half")
    Path(target.path, "folder").mkdir()
    assert target.list() == ["a.json"]


def test_permission_denied(sshd_host: SshServer, tmp_path: Path) -> None:
    # The server's read-only port: every write is refused with "permission denied".
    (sshd_host.root / "ro").mkdir()
    (sshd_host.root / "ro" / "kept.json").write_text("{}")
    ro = _sftp(sshd_host.url("ro", readonly=True))
    assert ro.list() == ["kept.json"]
    assert ro.read_text("kept.json") == "{}"
    with pytest.raises(BackupError, match=r"'offsite'.*cannot store a\.json: permission denied"):
        ro.put(_payload(tmp_path / "a", 10), "a.json")
    with pytest.raises(BackupError, match=r"cannot delete kept\.json: permission denied"):
        ro.delete("kept.json")
    assert sorted(os.listdir(sshd_host.root / "ro")) == ["kept.json"]
    ro.close()
    missing = _sftp(sshd_host.url("ro/new/deeper", readonly=True))
    with pytest.raises(BackupError, match=r"cannot create the folder .*/ro/new: permission denied"):
        missing.list()
    # A file where a folder should be.
    (sshd_host.root / "blocked").write_text("a file")
    blocked = _sftp(sshd_host.url("blocked/backups"))
    with pytest.raises(BackupError, match=r"/blocked exists on the server and is not a folder"):
        blocked.list()


def _logins(server: SshServer) -> int:
    return server.log.read_text().count("Accepted publickey")


def test_reconnects_once_after_a_dropped_connection(
    sshd_host: SshServer, target: SftpTarget, tmp_path: Path
) -> None:
    target.put(_payload(tmp_path / "a", 1000), "a.json")
    logins = _logins(sshd_host)
    sshd_host.drop_connections()
    assert target.list() == ["a.json"]  # reopened, not an error
    assert _logins(sshd_host) == logins + 1
    sshd_host.drop_connections()
    target.put(_payload(tmp_path / "b", 2000), "b.json")
    assert target.size("b.json") == 2000
    assert _logins(sshd_host) == logins + 2


def test_connection_dropped_during_an_upload(
    sshd_host: SshServer, target: SftpTarget, tmp_path: Path
) -> None:
    """The connection dies while the file is being written: the old version stays in place
    until the retry has written the whole new one, and no temporary file is left."""
    old = _payload(tmp_path / "old", 1000)
    target.put(old, "full-x.backup")
    new = _payload(tmp_path / "new", 40 * MiB)
    remote = Path(target.path)
    seen: list[bytes] = []

    def drop_when_writing() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            parts = [p for p in remote.iterdir() if p.name.startswith(".full-x.backup.part-")]
            if parts and parts[0].stat().st_size > 0:
                seen.append((remote / "full-x.backup").read_bytes())
                sshd_host.drop_connections()
                return
            time.sleep(0.002)

    logins = _logins(sshd_host)
    dropper = threading.Thread(target=drop_when_writing)
    dropper.start()
    target.put(new, "full-x.backup")
    dropper.join()
    assert seen == [old.read_bytes()]  # mid-upload, the final name still held the old file
    assert _logins(sshd_host) == logins + 1  # the upload was retried on a new connection
    assert (remote / "full-x.backup").read_bytes() == new.read_bytes()
    assert sorted(os.listdir(remote)) == ["full-x.backup"]


def test_unreachable_when_the_server_is_down(sshd_host: SshServer, tmp_path: Path) -> None:
    t = _sftp(sshd_host.url("down", timeout="2"))
    t.put(_payload(tmp_path / "a", 10), "a.json")  # connected
    sshd_host.stop()
    try:
        started = time.monotonic()
        with pytest.raises(BackupError, match=r"'offsite'.*host unreachable") as info:
            t.list()  # the open connection is gone; reopening it is refused
        assert time.monotonic() - started < 3
        assert "refused" in str(info.value)
        fresh = _sftp(sshd_host.url("down", timeout="2"))
        with pytest.raises(BackupError, match=r"host unreachable: connection to .* refused"):
            fresh.put(tmp_path / "a", "b.json")
    finally:
        sshd_host.start()
    assert t.list() == ["a.json"]  # back once the server is
    t.close()


def test_unreachable_address_times_out(sshd_host: SshServer, tmp_path: Path) -> None:
    # An address of the namespace's subnet that nobody holds: the connection never completes.
    base = sshd_host.address.rsplit(".", 1)[0]
    spec = sshd_host.url("x", timeout="1").replace(f"@{sshd_host.address}:", f"@{base}.77:")
    t = _sftp(spec)
    started = time.monotonic()
    with pytest.raises(BackupError, match=r"host unreachable: (no answer within 1 s|No route)"):
        t.list()
    assert time.monotonic() - started < 4


def test_silent_server_times_out(sshd_host: SshServer, tmp_path: Path) -> None:
    # A listener that accepts and never says a word (a hung server).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    accepted.append(listener.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            t = SftpTarget(
                "127.0.0.1",
                "/x",
                user="root",
                port=port,
                identity=sshd_host.identity,
                known_hosts=sshd_host.known_hosts,
                timeout=1,
            )
            started = time.monotonic()
            with pytest.raises(BackupError, match=r"host unreachable: no SSH answer within 1 s"):
                t.list()
            assert time.monotonic() - started < 4
        finally:
            stop.set()
            thread.join()
            for conn in accepted:
                conn.close()


def test_changed_host_key_is_refused(sshd_host: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "other_host"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30
    )
    known = tmp_path / "known_hosts"
    public = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known.write_text(f"[{sshd_host.address}]:{sshd_host.port} {public}\n")
    t = _sftp(sshd_host.url("mismatch", known_hosts=str(known)))
    with pytest.raises(BackupError, match="host key mismatch") as info:
        t.list()
    message = str(info.value)
    assert "refusing to connect" in message and str(known) in message
    served = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(sshd_host.host_key.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert served in message  # the fingerprint the server presented (public)
    assert not (sshd_host.root / "mismatch").exists()  # nothing was done there
    assert known.read_text().count("\n") == 1  # and the file was not rewritten
    _no_secret(message, other, sshd_host.host_key, sshd_host.identity)


def test_unknown_host_is_refused(sshd_host: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = _sftp(sshd_host.url("unknown", known_hosts=str(empty)))
    with pytest.raises(BackupError, match=r"host key refused: .* is not in the known_hosts"):
        t.list()
    assert empty.read_text() == ""  # never added
    missing = _sftp(sshd_host.url("unknown", known_hosts=str(tmp_path / "none")))
    with pytest.raises(BackupError, match=r"known_hosts file .* does not exist"):
        missing.list()
    assert not (sshd_host.root / "unknown").exists()


def test_wrong_client_key_is_refused(sshd_host: SshServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
        check=True,
        timeout=30,
    )
    t = _sftp(sshd_host.url("auth", identity=str(stranger)))
    with pytest.raises(BackupError, match=r"authentication refused for user 'root'") as info:
        t.list()
    message = str(info.value)
    assert str(stranger) in message
    _no_secret(message, stranger, sshd_host.identity)
    assert info.value.__cause__ is None

    # An encrypted key without its passphrase, then with it (from the environment).
    locked = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-pass", "-f", str(locked)],
        check=True,
        timeout=30,
    )
    t = _sftp(sshd_host.url("auth", identity=str(locked)))
    with pytest.raises(BackupError, match="is encrypted: set passphrase_env"):
        t.list()
    t = _sftp(sshd_host.url("auth", identity=str(locked), passphrase_env="EP_TEST_PASS"))
    with pytest.raises(BackupError, match=r"EP_TEST_PASS .* is not set"):
        t.list()
    os.environ["EP_TEST_PASS"] = "Zq9-not-the-pass"
    try:
        with pytest.raises(BackupError, match=r"not a usable .* passphrase is wrong") as info:
            t.list()
        assert "Zq9" not in str(info.value)
        os.environ["EP_TEST_PASS"] = "s3cret-pass"
        with pytest.raises(BackupError, match="authentication refused") as info:
            t.list()  # decrypted, but not authorized on the server
        assert "s3cret-pass" not in str(info.value)
    finally:
        del os.environ["EP_TEST_PASS"]

    missing = _sftp(sshd_host.url("auth", identity=str(tmp_path / "absent")))
    with pytest.raises(BackupError, match=r"private key file .*absent does not exist"):
        missing.list()


@pytest.mark.parametrize(
    ("kind", "fmt"), [("rsa", "-m RFC4716"), ("rsa", "-m PEM"), ("ecdsa", "-m RFC4716")]
)
def test_rsa_and_ecdsa_keys(sshd_host: SshServer, tmp_path: Path, kind: str, fmt: str) -> None:
    key = tmp_path / f"id_{kind}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *fmt.split(), "-N", "pass-word", "-f", str(key)],
        check=True,
        timeout=60,
    )
    authorized = sshd_host.dir / "authorized_keys"
    authorized.write_text(authorized.read_text() + key.with_suffix(".pub").read_text())
    os.environ["EP_TEST_KEY_PASS"] = "pass-word"
    try:
        t = _sftp(
            sshd_host.url(f"{kind}-keys", identity=str(key), passphrase_env="EP_TEST_KEY_PASS")
        )
        t.put(_payload(tmp_path / "a", 100), "a.json")
        assert t.list() == ["a.json"]
        t.close()
    finally:
        del os.environ["EP_TEST_KEY_PASS"]


def test_two_targets_from_one_setting(sshd_host: SshServer, tmp_path: Path) -> None:
    local_dir = tmp_path / "local"
    targets = parse_targets(f"{local_dir} {sshd_host.url('multi', kinds='full,incremental')}")
    assert [t.name for t in targets] == ["local", "offsite"]
    assert targets[1].kinds == frozenset({"full", "incremental"})
    payload = _payload(tmp_path / "p", 4096)
    for t in targets:
        t.put(payload, "full-x.backup")
    assert [t.list() for t in targets] == [["full-x.backup"], ["full-x.backup"]]
    for t in targets:
        t.close()
