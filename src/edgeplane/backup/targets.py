"""Where backups are stored: a local directory, and a second location on another host (SFTP).

A target holds plain files (``<id>.backup``, ``<id>.json``) in one flat directory. Every target
has a short ``name`` (the label the catalog records: ``local``, ``offsite``), a ``url`` to show
(never holding a secret) and the backup ``kinds`` it stores (a full-only "multi-region" copy,
say). ``put`` is atomic at every target: the file is written under a temporary dot-name,
checked, and renamed into place, so a failure never leaves a partial file under the final name;
dot-names are never listed, and valid names never start with a dot.

Targets are written as specs (``parse_target`` / ``parse_targets``):

- ``/var/backups/edgeplane`` or ``file:///var/backups/edgeplane?name=local&kinds=full``: a
  local directory (created 0700; files 0600, fsynced before the rename).
- ``sftp://user@host[:port]/absolute/path?identity=KEY&known_hosts=FILE&name=offsite&kinds=
  full,incremental&passphrase_env=VAR&timeout=10``: SFTP over SSH (paramiko). The host key is
  checked against ``known_hosts`` (default ``~/.ssh/known_hosts``): an unknown or changed key
  is refused, never added. The client authenticates with the private key ``identity``
  (ed25519, ECDSA or RSA; default the first of ``~/.ssh/id_ed25519``, ``id_ecdsa``,
  ``id_rsa``), whose passphrase, if any, comes from the environment variable named by
  ``passphrase_env``. Passwords are not accepted in the URL. The user defaults to the local
  user, the port to 22, the timeout (connect, handshake, each SFTP answer) to 10 s. The remote
  directory is created if missing (``mkdir -p``, new folders 0700); files are 0600. A dropped
  connection is reopened once per operation.

Errors are ``BackupError`` naming the target and the reason (host unreachable, authentication
refused, host key unknown or changed, permission denied, no such file); they never hold key
material or passphrases.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import getpass
import os
import posixpath
import re
import secrets
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlsplit

import paramiko

from edgeplane.backup.errors import BackupError

__all__ = [
    "KINDS",
    "LocalTarget",
    "SftpTarget",
    "Target",
    "check_name",
    "parse_kinds",
    "parse_target",
    "parse_targets",
    "split_specs",
]

KINDS: frozenset[str] = frozenset({"full", "incremental", "config"})
DEFAULT_TIMEOUT = 10.0
MAX_TEXT = 16 * 1024 * 1024  # read_text is for manifests: anything larger is refused
CHUNK = 1024 * 1024

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER = re.compile(r"[^\s/:@\x00-\x1f\x7f]{1,64}")
# A comma separates two specs only where a new spec starts (a path or a scheme://), so that
# ``kinds=full,incremental`` stays in one piece.
_SPLIT = re.compile(r",(?=[A-Za-z][A-Za-z0-9+.-]*://|[/~.])")
_DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)

KindsArg = str | frozenset[str] | set[str] | tuple[str, ...] | builtins.list[str] | None
T = TypeVar("T")


@runtime_checkable
class Target(Protocol):
    """A place that stores backup files under plain names (see the module docstring)."""

    name: str
    url: str
    kinds: frozenset[str]

    def put(self, local: Path, name: str) -> None:
        """Store the file ``local`` as ``name``, atomically (replacing an older ``name``)."""
        ...

    def get(self, name: str, local: Path) -> None:
        """Copy ``name`` to the file ``local`` (written under a temporary name, then renamed;
        missing parent folders are created)."""
        ...

    def read_text(self, name: str) -> str:
        """The content of a small UTF-8 file (a manifest)."""
        ...

    def list(self) -> builtins.list[str]:
        """The names of the files stored here, sorted."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing file is fine."""
        ...

    def size(self, name: str) -> int:
        """The size of ``name`` in bytes."""
        ...

    def close(self) -> None:
        """Release connections (the target can still be used afterwards)."""
        ...


# --------------------------------------------------------------------------- validation


def check_name(name: str) -> str:
    """``name`` if it is a plain file name (ASCII letters, digits and ``_.-``, no leading dot,
    no ``..``, at most 200 characters), else BackupError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BackupError(
            f"invalid backup file name {name!r}: a plain file name is expected (letters, "
            "digits and _.-, not starting with a dot, no '/' or '..')"
        )
    return name


def check_label(label: str) -> str:
    """A target's name: lower-case letters, digits, ``-`` and ``_``, at most 32 characters."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise BackupError(
            f"invalid target name {label!r}: 1-32 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return label


def parse_kinds(value: KindsArg) -> frozenset[str]:
    """The backup kinds a target stores: a comma-separated string or a collection of ``full``
    / ``incremental`` / ``config``; None means all of them."""
    if value is None:
        return KINDS
    items = value.split(",") if isinstance(value, str) else list(value)
    kinds = frozenset(k.strip() for k in items if k.strip())
    unknown = sorted(kinds - KINDS)
    if unknown:
        raise BackupError(
            f"invalid kinds: {', '.join(map(repr, unknown))} (expected some of "
            f"{', '.join(sorted(KINDS))})"
        )
    if not kinds:
        raise BackupError("invalid kinds: at least one of config, full, incremental is needed")
    return kinds


def _query(kind: str, query: str, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise BackupError(
                f"{kind} target: unknown parameter {key!r} (allowed: {', '.join(sorted(allowed))})"
            )
        if key in params:
            raise BackupError(f"{kind} target: parameter {key!r} given twice")
        params[key] = value
    return params


def _write_atomically(
    final: Path, read: Callable[[int], bytes], *, fsync: bool = True, parents: bool = False
) -> None:
    """Write what ``read`` yields to a dot-named temporary file beside ``final`` (0600), fsync
    it, rename it over ``final`` and fsync the folder. On any failure the temporary file is
    removed and the exception goes on unchanged."""
    directory = final.parent
    if parents:
        directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{final.name}.part-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := read(CHUNK):
                out.write(chunk)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _decode(target: str, name: str, data: bytes) -> str:
    if len(data) > MAX_TEXT:
        raise BackupError(
            f"backup target {target!r}: {name} is larger than {MAX_TEXT // (1024 * 1024)} MiB, "
            "not a manifest"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupError(f"backup target {target!r}: {name} is not UTF-8 text") from None


def _open_source(local: Path) -> IO[bytes]:
    try:
        return Path(local).open("rb")  # closed by the caller's ``with``
    except OSError as exc:
        raise BackupError(f"cannot read {local}: {exc.strerror or type(exc).__name__}") from exc


# --------------------------------------------------------------------------- local directory

_LOCAL_REASONS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
}


class LocalTarget:
    """A folder of this machine (created 0700 if missing); files are 0600 and fsynced."""

    def __init__(self, path: Path | str, name: str = "local", kinds: KindsArg = None) -> None:
        self.path = Path(path).expanduser().absolute()
        self.name = check_label(name)
        self.kinds = parse_kinds(kinds)
        self.url = self.path.as_uri()

    def __repr__(self) -> str:
        return f"LocalTarget({self.name!r}, {self.url!r})"

    def _error(self, what: str, exc: OSError) -> BackupError:
        reason = _LOCAL_REASONS.get(exc.errno or 0) or exc.strerror or type(exc).__name__
        return BackupError(f"backup target {self.name!r} ({self.url}): {what}: {reason}")

    def _dir(self) -> Path:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(f"cannot create the folder {self.path}", exc) from exc
        if not self.path.is_dir():
            raise BackupError(f"backup target {self.name!r}: {self.path} is not a folder")
        return self.path

    def put(self, local: Path, name: str) -> None:
        check_name(name)
        directory = self._dir()
        with _open_source(local) as src:
            try:
                _write_atomically(directory / name, src.read)
            except OSError as exc:
                raise self._error(f"cannot store {name}", exc) from exc

    def get(self, name: str, local: Path) -> None:
        path = self.path / check_name(name)
        try:
            src = path.open("rb")
        except OSError as exc:
            raise self._error(f"cannot read {name}", exc) from exc
        with src:
            try:
                _write_atomically(Path(local), src.read, fsync=False, parents=True)
            except OSError as exc:
                reason = _LOCAL_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
                raise BackupError(
                    f"cannot copy {name} from backup target {self.name!r} to {local}: {reason}"
                ) from exc

    def read_text(self, name: str) -> str:
        path = self.path / check_name(name)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_TEXT + 1)
        except OSError as exc:
            raise self._error(f"cannot read {name}", exc) from exc
        return _decode(self.name, name, data)

    def list(self) -> builtins.list[str]:
        try:
            with os.scandir(self.path) as it:
                return sorted(
                    e.name
                    for e in it
                    if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
                )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error("cannot list the folder", exc) from exc

    def delete(self, name: str) -> None:
        path = self.path / check_name(name)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error(f"cannot delete {name}", exc) from exc

    def size(self, name: str) -> int:
        path = self.path / check_name(name)
        try:
            return path.stat().st_size
        except OSError as exc:
            raise self._error(f"cannot read the size of {name}", exc) from exc

    def close(self) -> None:
        return None


# --------------------------------------------------------------------------- SFTP


class _UnknownHostKeyError(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a server whose host key is not in known_hosts (never add it)."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKeyError(key)


def _fingerprint(key: paramiko.PKey) -> str:
    """The key's type and SHA256 fingerprint (public information)."""
    try:
        return f"{key.get_name()} {key.fingerprint}"
    except Exception:  # a paramiko without ``fingerprint``: the type alone
        return key.get_name()


class SftpTarget:
    """A folder on another host, reached over SFTP (see the module docstring). The connection
    is opened on first use and kept; operations are serialized."""

    def __init__(
        self,
        host: str,
        path: str,
        *,
        user: str | None = None,
        port: int = 22,
        identity: Path | str | None = None,
        known_hosts: Path | str | None = None,
        passphrase_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "offsite",
        kinds: KindsArg = None,
    ) -> None:
        if not host:
            raise BackupError("sftp target: a host is required (sftp://user@host/path)")
        if not 0 < port < 65536:
            raise BackupError(f"sftp target: invalid port {port} (1-65535)")
        if not path.startswith("/"):
            raise BackupError(
                f"sftp target: the remote folder must be an absolute path (sftp://host/path), "
                f"not {path!r}"
            )
        if not 0 < timeout <= 3600:
            raise BackupError(f"sftp target: invalid timeout {timeout:g} (seconds, 0 < t <= 3600)")
        if user is not None and not _USER.fullmatch(user):
            raise BackupError(
                f"sftp target: invalid user {user!r} (no spaces, '/', ':' or control characters)"
            )
        if passphrase_env is not None and not _ENV_NAME.fullmatch(passphrase_env):
            raise BackupError(
                f"sftp target: invalid passphrase_env {passphrase_env!r} (the name of an "
                "environment variable)"
            )
        self.host = host
        self.port = port
        self.path = "/" + posixpath.normpath(path).lstrip("/")
        self.user = user or getpass.getuser()
        self.identity = Path(identity).expanduser() if identity else None
        self.known_hosts = Path(known_hosts or "~/.ssh/known_hosts").expanduser()
        self.passphrase_env = passphrase_env
        self.timeout = float(timeout)
        self.name = check_label(name)
        self.kinds = parse_kinds(kinds)
        shown_host = f"[{host}]" if ":" in host else host
        shown_port = f":{port}" if port != 22 else ""
        self.url = f"sftp://{self.user}@{shown_host}{shown_port}{self.path}"
        self._lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @classmethod
    def from_url(cls, url: str) -> SftpTarget:
        """An SftpTarget from ``sftp://user@host[:port]/path?...`` (parameters: identity,
        known_hosts, passphrase_env, timeout, name, kinds)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "sftp":
            raise BackupError(f"not an sftp:// URL (scheme {parts.scheme!r})")
        if parts.password is not None:
            raise BackupError(
                "sftp target: passwords in the URL are not supported; use identity= (a private "
                "key file) and passphrase_env= (the environment variable holding its passphrase)"
            )
        if parts.fragment:
            raise BackupError("sftp target: a URL fragment ('#...') is not allowed")
        try:
            port = parts.port or 22
        except ValueError:
            raise BackupError("sftp target: invalid port (1-65535)") from None
        params = _query(
            "sftp",
            parts.query,
            {"identity", "known_hosts", "passphrase_env", "timeout", "name", "kinds"},
        )
        timeout = DEFAULT_TIMEOUT
        if "timeout" in params:
            try:
                timeout = float(params["timeout"])
            except ValueError:
                raise BackupError(
                    f"sftp target: invalid timeout {params['timeout']!r} (seconds)"
                ) from None
        return cls(
            parts.hostname or "",
            unquote(parts.path),
            user=unquote(parts.username) if parts.username else None,
            port=port,
            identity=params.get("identity") or None,
            known_hosts=params.get("known_hosts") or None,
            passphrase_env=params.get("passphrase_env") or None,
            timeout=timeout,
            name=params.get("name") or "offsite",
            kinds=params.get("kinds"),
        )

    def __repr__(self) -> str:
        return f"SftpTarget({self.name!r}, {self.url!r})"

    # ------------------------------------------------------------------ connection

    def _fail(self, reason: str) -> BackupError:
        return BackupError(f"backup target {self.name!r} ({self.url}): {reason}")

    def _host_label(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _identity_path(self) -> Path:
        if self.identity is not None:
            if not self.identity.is_file():
                raise self._fail(f"the private key file {self.identity} does not exist")
            return self.identity
        for candidate in _DEFAULT_IDENTITIES:
            path = Path("~/.ssh").expanduser() / candidate
            if path.is_file():
                return path
        raise self._fail(
            "no identity= (private key file) given and none of ~/.ssh/"
            + ", ~/.ssh/".join(_DEFAULT_IDENTITIES)
            + " exists"
        )

    def _load_key(self) -> tuple[paramiko.PKey, Path]:
        path = self._identity_path()
        passphrase: str | None = None
        if self.passphrase_env is not None:
            passphrase = os.environ.get(self.passphrase_env)
            if passphrase is None:
                raise self._fail(
                    f"the environment variable {self.passphrase_env} (passphrase_env) is not set"
                )
        reason = "is not a usable ed25519, ECDSA or RSA private key" + (
            " (or the passphrase is wrong)" if passphrase is not None else ""
        )
        for key_class in _KEY_CLASSES:
            try:
                return key_class.from_private_key_file(str(path), passphrase), path
            except paramiko.PasswordRequiredException:
                reason = "is encrypted: set passphrase_env= to the variable holding its passphrase"
                break
            except PermissionError:
                reason = "cannot be read: permission denied"
                break
            except OSError as exc:
                reason = f"cannot be read: {exc.strerror or type(exc).__name__}"
                break
            except Exception:  # another type, or not a key: paramiko's messages are not shown
                continue
        # ``from None``: the causes could carry fragments of the key file.
        raise self._fail(f"the private key file {path} {reason}") from None

    def _host_keys(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        try:
            keys.load(str(self.known_hosts))
        except FileNotFoundError:
            raise self._fail(
                f"the known_hosts file {self.known_hosts} does not exist, so the host key of "
                f"{self._host_label()} cannot be verified (add the key after checking its "
                "fingerprint, e.g. with ssh-keyscan)"
            ) from None
        except OSError as exc:
            raise self._fail(
                f"cannot read the known_hosts file {self.known_hosts}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        return keys

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._alive():
            return self._sftp
        self._disconnect()
        pkey, key_path = self._load_key()
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_RefuseUnknownHost())
        client.get_host_keys().update(self._host_keys())
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=pkey,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
                allow_agent=False,
                look_for_keys=False,
            )
            sftp = client.open_sftp()
        except Exception as exc:
            client.close()
            raise self._connect_error(exc, pkey, key_path) from None
        except BaseException:
            client.close()
            raise
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(self.timeout)  # an SFTP answer that never comes: a timeout
        self._client, self._sftp = client, sftp
        try:
            self._makedirs(sftp)
        except BaseException:
            self._disconnect()
            raise
        return sftp

    def _connect_error(self, exc: Exception, pkey: paramiko.PKey, key_path: Path) -> BackupError:
        seconds = f"{self.timeout:g}"
        if isinstance(exc, _UnknownHostKeyError):
            return self._fail(
                f"host key refused: {self._host_label()} is not in the known_hosts file "
                f"{self.known_hosts} (it presented {_fingerprint(exc.key)}); add it after "
                "checking the fingerprint"
            )
        if isinstance(exc, paramiko.BadHostKeyException):
            return self._fail(
                f"host key mismatch: {self._host_label()} presented {_fingerprint(exc.key)}, "
                f"not the key recorded in {self.known_hosts}; refusing to connect (if the host "
                "was reinstalled, update known_hosts)"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return self._fail(
                f"authentication refused for user {self.user!r} with the key {key_path} "
                f"({_fingerprint(pkey)}): is its public key in the server's authorized_keys?"
            )
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            return self._fail(f"host unreachable: connection to {self._host_label()} refused")
        if isinstance(exc, TimeoutError):  # socket.timeout too
            return self._fail(f"host unreachable: no answer within {seconds} s")
        if isinstance(exc, socket.gaierror):
            return self._fail(f"host unreachable: cannot resolve {self.host!r}")
        if isinstance(exc, OSError):
            return self._fail(f"host unreachable: {exc.strerror or type(exc).__name__}")
        if isinstance(exc, EOFError):
            return self._fail("host unreachable: the server closed the connection")
        if isinstance(exc, paramiko.SSHException):
            text = str(exc)
            if "banner" in text.lower() or "no existing session" in text.lower():
                # (paramiko gives up the handshake silently after ``timeout``; the next step
                # then finds no session)
                return self._fail(f"host unreachable: no SSH answer within {seconds} s")
            if "channel closed" in text.lower():
                return self._fail("the server refused the SFTP subsystem")
            return self._fail(f"SSH connection failed: {text}")
        return self._fail(f"SSH connection failed: {type(exc).__name__}")

    def _disconnect(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _makedirs(self, sftp: paramiko.SFTPClient) -> None:
        """``mkdir -p`` of the remote folder (new folders 0700)."""
        current = "/"
        for part in [p for p in self.path.split("/") if p]:
            current = posixpath.join(current, part)
            try:
                attrs = sftp.stat(current)
            except FileNotFoundError:
                try:
                    sftp.mkdir(current, mode=0o700)
                except OSError as exc:
                    with contextlib.suppress(OSError):  # made meanwhile by someone else
                        if stat.S_ISDIR(sftp.stat(current).st_mode or 0):
                            continue
                    raise self._op_error(f"cannot create the folder {current}", exc) from exc
                continue
            except OSError as exc:
                raise self._op_error(f"cannot reach the folder {current}", exc) from exc
            if not stat.S_ISDIR(attrs.st_mode or 0):
                raise self._fail(f"{current} exists on the server and is not a folder")

    def _op_error(self, what: str, exc: BaseException) -> BackupError:
        if isinstance(exc, FileNotFoundError):
            reason = "no such file"
        elif isinstance(exc, PermissionError):
            reason = "permission denied"
        elif isinstance(exc, TimeoutError):
            reason = f"host unreachable: no answer within {self.timeout:g} s"
        elif isinstance(exc, (EOFError, ConnectionError, paramiko.SSHException)):
            reason = "host unreachable: the connection was lost"
        elif isinstance(exc, OSError):
            reason = _LOCAL_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
        else:
            reason = str(exc) or type(exc).__name__
        return self._fail(f"{what}: {reason}")

    def _run(self, what: str, op: Callable[[paramiko.SFTPClient], T]) -> T:
        """``op`` on a live connection; once more on a fresh one if the connection dropped."""
        with self._lock:
            attempt = 0
            while True:
                attempt += 1
                sftp = self._connect()
                try:
                    return op(sftp)
                except BackupError:
                    raise
                except Exception as exc:
                    dropped = not self._alive() or isinstance(
                        exc, (EOFError, ConnectionError, TimeoutError, paramiko.SSHException)
                    )
                    if dropped:
                        self._disconnect()
                        if attempt == 1:
                            continue
                    raise self._op_error(what, exc) from exc

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, check_name(name))

    # ------------------------------------------------------------------ operations

    def put(self, local: Path, name: str) -> None:
        final = self._remote(name)
        # One temporary name for both tries: a retry after a dropped connection overwrites
        # what the first try left.
        tmp = posixpath.join(self.path, f".{name}.part-{secrets.token_hex(4)}")
        with _open_source(local) as src:
            size = os.fstat(src.fileno()).st_size
            self._run(
                f"cannot store {name}", lambda sftp: self._upload(sftp, src, size, tmp, final)
            )

    def _upload(
        self, sftp: paramiko.SFTPClient, src: IO[bytes], size: int, tmp: str, final: str
    ) -> None:
        src.seek(0)
        base = posixpath.basename(final)
        try:
            with sftp.open(tmp, "wb") as out:
                out.chmod(0o600)
                out.set_pipelined(True)
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            stored = sftp.stat(tmp).st_size
            if stored != size:
                raise self._fail(f"cannot store {base}: {stored} of {size} bytes arrived")
            try:
                sftp.posix_rename(tmp, final)  # replaces ``final`` atomically (OpenSSH)
            except OSError as exc:
                if "unsupported" not in str(exc).lower():
                    raise
                # A server without posix-rename@openssh.com: a plain rename does not replace.
                with contextlib.suppress(FileNotFoundError):
                    sftp.remove(final)
                sftp.rename(tmp, final)
        except BaseException:
            if self._alive():
                with contextlib.suppress(Exception):
                    sftp.remove(tmp)
            raise

    def get(self, name: str, local: Path) -> None:
        remote = self._remote(name)
        local = Path(local)

        def download(sftp: paramiko.SFTPClient) -> None:
            received = 0

            with sftp.open(remote, "rb") as src:
                expected = src.stat().st_size
                src.prefetch(expected)

                def read(n: int) -> bytes:
                    nonlocal received
                    data = src.read(n)
                    received += len(data)
                    return data

                _write_atomically(local, read, fsync=False, parents=True)
            if expected is not None and received != expected:
                with contextlib.suppress(OSError):
                    local.unlink()
                raise self._fail(f"cannot fetch {name}: {received} of {expected} bytes arrived")

        self._run(f"cannot fetch {name}", download)

    def read_text(self, name: str) -> str:
        remote = self._remote(name)

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(remote, "rb") as f:
                return f.read(MAX_TEXT + 1)

        return _decode(self.name, name, self._run(f"cannot read {name}", read))

    def list(self) -> builtins.list[str]:
        def listing(sftp: paramiko.SFTPClient) -> builtins.list[str]:
            return sorted(
                a.filename
                for a in sftp.listdir_attr(self.path)
                if not a.filename.startswith(".") and stat.S_ISREG(a.st_mode or 0)
            )

        return self._run("cannot list the folder", listing)

    def delete(self, name: str) -> None:
        remote = self._remote(name)

        def remove(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(remote)

        self._run(f"cannot delete {name}", remove)

    def size(self, name: str) -> int:
        remote = self._remote(name)
        return self._run(f"cannot read the size of {name}", lambda s: s.stat(remote).st_size or 0)


# --------------------------------------------------------------------------- specs


def parse_target(spec: str) -> Target:
    """A target from a spec: a local path (``/x``, ``./x``, ``~/x``, or a relative name
    without ``:``), ``file:///path[?name=..&kinds=..]`` or ``sftp://...``. BackupError
    otherwise, naming the scheme (never the whole value, which could hold a secret)."""
    spec = spec.strip()
    if not spec:
        raise BackupError("empty backup target")
    m = _SCHEME.match(spec)
    if m is None or spec.startswith(("/", "./", "../", "~")):
        return LocalTarget(spec)
    scheme = m.group(1).lower()
    if scheme == "file":
        parts = urlsplit(spec)
        if parts.netloc not in ("", "localhost"):
            raise BackupError(
                f"file target: a host ({parts.netloc!r}) is not allowed; use sftp:// for "
                "another host"
            )
        params = _query("file", parts.query, {"name", "kinds"})
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise BackupError("file target: an absolute path is required (file:///path)")
        return LocalTarget(path, name=params.get("name") or "local", kinds=params.get("kinds"))
    if scheme == "sftp":
        return SftpTarget.from_url(spec)
    raise BackupError(
        f"unsupported backup target scheme {scheme!r}: use a local path, file:///path or "
        "sftp://user@host/path"
    )


def split_specs(text: str) -> builtins.list[str]:
    """Specs separated by whitespace or commas (a comma inside ``kinds=full,incremental`` is
    no separator: only one followed by a path or a ``scheme://`` is)."""
    return [s.strip(",") for chunk in text.split() for s in _SPLIT.split(chunk) if s.strip(",")]


def parse_targets(text: str) -> builtins.list[Target]:
    """Targets from comma- or whitespace-separated specs; their names must differ."""
    targets: builtins.list[Target] = []
    seen: set[str] = set()
    for spec in split_specs(text):
        target = parse_target(spec)
        if target.name in seen:
            for made in targets:
                made.close()
            raise BackupError(
                f"duplicate backup target name {target.name!r}: give each target its own "
                "name= (e.g. ?name=offsite)"
            )
        seen.add(target.name)
        targets.append(target)
    return targets
