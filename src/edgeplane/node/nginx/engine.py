"""Apply rendered releases to a running nginx: stage, check, swap, reload, probe, roll back."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeplane import collector
from edgeplane.node.nginx.default_cert import default_cert
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.memory import accepting_workers, tree_pss_mib
from edgeplane.node.nginx.process import NginxError, NginxProcess, check, probe
from edgeplane.node.nginx.purge import purge_cache
from edgeplane.node.nginx.render import Release, RenderMemo, render_release
from edgeplane.node.nginx.render_bots import flag_dir
from edgeplane.node.nginx.render_shards import SHARD_DIR
from edgeplane.node.nginx.render_stapling import staple_files
from edgeplane.node.nginx.render_tls import DEFAULT_CERT, cert_file, cert_files, ticket_files
from edgeplane.node.nginx.render_upstreams import in_rotation
from edgeplane.protocol.config import AcmeHttpSpec, CertSpec, EdgeConfig
from edgeplane.protocol.messages import PurgeTask

KEEP_RELEASES = 5
KEEP_FAILED = 3
PROBE_DEADLINE = 10.0
_SHARD_NAME = re.compile(rb"\binclude \.\./\.\./" + SHARD_DIR.encode() + rb"/([0-9a-f]+\.map);")


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    changed: bool  # False when the rendered files equal the running release (no reload)
    marker: str  # hash of the rendered release; served by the probe location
    duration_ms: float
    error: str | None  # nginx's own message ([emerg] line) when ok is False
    phases: tuple[tuple[str, float], ...] = ()  # (step, ms) in order: where the time went

    def timings(self) -> str:
        """``render 61, files 90, check 82, reload 163, forget 10`` (ms): for the log."""
        return ", ".join(f"{step} {ms:.0f}" for step, ms in self.phases)


class NginxEngine:
    """One node's nginx under ``local.prefix``; every method is safe to call from any thread."""

    def __init__(self, local: NodeLocal, *, binary: str = "nginx") -> None:
        if not local.prefix.is_absolute():
            raise ValueError(f"nginx prefix must be absolute: {local.prefix}")
        self.local = local
        self.binary = binary
        self.prefix = local.prefix
        self.process = NginxProcess(local.prefix, binary)
        self._lock = threading.RLock()
        self._cert_ids: set[str] = set()  # certificates whose files are written
        # What the files under certs/ are known to hold since this engine last looked: the
        # name links (file -> the file under certs/ it points at) and the files kept by the
        # last ``_forget`` (None: not looked yet). An apply then touches only the names and
        # files that changed, instead of reading 20,000 links and listing 30,000 files of a
        # 10,000-domain node each time.
        self._links: dict[str, str] = {}
        self._linked: dict[str, str] | None = None  # the targets the last apply pointed
        self._kept: tuple[set[str], set[str]] | None = None  # files on disk, links in use
        self._kept_before: set[str] = set()  # the certificate files the previous apply used
        # The map shards written under maps/ (None: not looked yet), and the shards each
        # release directory names (a release is never changed once staged).
        self._shards: set[str] | None = None
        self._release_shards: dict[str, frozenset[str]] = {}
        self._memo = RenderMemo()  # the last render's maps and links: the next starts there
        user = local.worker_user
        self._owner = None
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            self._owner = (entry.pw_uid, entry.pw_gid)

    # ------------------------------------------------------------------ paths and files

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.json"

    @property
    def bundle_root(self) -> Path:
        """Where static bundles are unpacked, one directory per sha256 (see render)."""
        return self.local.bundle_root

    @property
    def bot_flags(self) -> Path:
        """Where the agent flags client addresses for the bot rules (``render_bots``)."""
        return flag_dir(self.prefix)

    @property
    def cache_dir(self) -> Path:
        return self.prefix / "cache"

    @property
    def releases(self) -> Path:
        return self.prefix / "releases"

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    def _chown(self, path: str | Path) -> None:
        if self._owner is not None:
            os.chown(path, *self._owner)

    def _check_traversable(self) -> None:
        """Workers (another user) read certificates and write the cache under the prefix."""
        if self._owner is None:
            return
        for parent in [self.prefix, *self.prefix.parents]:
            st = parent.stat()
            if not st.st_mode & 0o001 and st.st_uid != self._owner[0]:
                raise NginxError(
                    f"{parent} is not searchable by nginx workers ({self.local.worker_user}): "
                    "the prefix and its parents need mode o+x"
                )

    def _prepare(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.prefix.chmod(0o755)
        self._check_traversable()
        for name in ("logs", "releases", "tmp", SHARD_DIR):
            (self.prefix / name).mkdir(exist_ok=True)
        for name in ("cache", "acme-challenge", "certs", "tickets"):
            path = self.prefix / name
            path.mkdir(exist_ok=True)
            self._chown(path)
        self._chown(self.prefix / "tmp")
        (self.prefix / "certs").chmod(0o700)
        (self.prefix / "tickets").chmod(0o700)
        (self.prefix / "certs" / "names").mkdir(exist_ok=True)
        self._chown(self.prefix / "certs" / "names")
        default = self.prefix / "certs" / f"{DEFAULT_CERT}.pem"
        if not default.exists():
            self._write_cert_file(f"{DEFAULT_CERT}.pem", default_cert())

    @property
    def acme_dir(self) -> Path:
        return self.prefix / "acme-challenge"

    def publish_acme(self, answers: tuple[AcmeHttpSpec, ...]) -> int:
        """Serve exactly these HTTP-01 answers (files under ``acme-challenge/``, read by nginx
        as they are: no reload); the number of files written or removed."""
        with self._lock:
            self._prepare()
            wanted = {a.token: a.key_authorization for a in answers}
            changed = 0
            for path in self.acme_dir.iterdir():
                if path.name not in wanted and not path.name.startswith("."):
                    path.unlink(missing_ok=True)
                    changed += 1
            for token, body in wanted.items():
                path = self.acme_dir / token
                try:
                    if path.read_text() == body:
                        continue
                except OSError:
                    pass
                tmp = self.acme_dir / f".{token}.tmp"
                tmp.write_text(body)
                tmp.chmod(0o644)
                os.replace(tmp, path)
                changed += 1
            return changed

    def _write_cert_file(self, name: str, content: bytes, folder: str = "certs") -> None:
        # Names are content-addressed (the certificate's hash) and files appear whole (rename):
        # an existing file holds this content. Reading 20,000 files back at every apply of a
        # 10,000-domain snapshot cost more than the rest of the apply.
        # Paths as strings: pathlib interns every part of every path it makes, and the
        # interpreter's table of interned strings grew by megabytes for 20,000 names.
        directory = os.path.join(self.prefix, folder)
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return
        tmp = os.path.join(directory, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        self._chown(tmp)
        os.rename(tmp, path)

    def _new_certs(self, config: EdgeConfig) -> list[CertSpec]:
        """The certificates whose files this engine has not written yet: only those are
        encoded and written (10,000 certificates are ~25 MB of PEM, for one that is new)."""
        new = []
        for cert in config.certs:
            if cert.id in self._cert_ids:
                continue
            if os.path.exists(os.path.join(self.prefix, "certs", cert_file(cert.id))):
                self._cert_ids.add(cert.id)
                continue
            new.append(cert)
        return new

    def _write_certs(
        self, certs: list[CertSpec], full_cert: Callable[[str], CertSpec] | None
    ) -> None:
        """Write each certificate's file, one at a time: a certificate held by reference (no
        PEM) is read whole with ``full_cert`` just before (10,000 at once, the first apply of
        a node, were ~60 MiB of text that fragmented the agent's heap)."""
        for cert in certs:
            whole = cert if cert.cert_pem or full_cert is None else full_cert(cert.id)
            for name, content in cert_files([whole]).items():
                self._write_cert_file(name, content)
            self._cert_ids.add(cert.id)

    def _link_names(self, targets: dict[str, str]) -> None:
        """Point each SNI name's link at its certificate, each link replaced atomically (a
        handshake reads the old file or the new one, never a half of each). Only the links
        that differ from the last apply's are looked at: the others were pointed then, and
        ``_forget`` removes a link only once no apply names it."""
        names = os.path.join(self.prefix, "certs", "names")  # strings: see _write_cert_file
        known = self._links
        last = self._linked
        todo = targets if last is None else dict(targets.items() - last.items())
        for name, target in todo.items():
            if known.get(name) == target:
                continue
            link = os.path.join(names, name)
            want = f"../{target}"
            try:
                if os.readlink(link) == want:
                    self._links[name] = target
                    continue
            except OSError:
                pass
            tmp = os.path.join(names, f".{name}.tmp")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(want, tmp)
            os.replace(tmp, link)
            self._links[name] = target
        self._linked = targets

    def _write_shards(self, shards: dict[str, bytes]) -> None:
        """Write the map shards not written yet (named by their content: a shard on disk holds
        what its name says, and appears whole, by rename)."""
        folder = self.prefix / SHARD_DIR
        if self._shards is None:
            self._shards = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        for name, content in shards.items():
            if name in self._shards:
                continue
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(content)
            os.rename(tmp, folder / name)
            self._shards.add(name)

    def _stage(self, release: Release) -> Path:
        marker = release.marker
        stage = self.releases / marker
        if stage.exists():
            shutil.rmtree(stage)
        tmp = self.releases / f".{marker}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, content in release.files.items():
            (tmp / name).write_bytes(content)
        os.rename(tmp, stage)
        self._release_shards[marker] = frozenset(release.shards)
        return stage

    def _named_shards(self, release: Path) -> frozenset[str]:
        """The shards a release directory names (read once: releases do not change)."""
        marker = release.name.removeprefix("failed-")
        known = self._release_shards.get(marker)
        if known is None:
            names: set[str] = set()
            for path in release.iterdir():
                if path.suffix in (".map", ".conf"):
                    with contextlib.suppress(OSError):
                        names.update(m.decode() for m in _SHARD_NAME.findall(path.read_bytes()))
            known = self._release_shards[marker] = frozenset(names)
        return known

    def _forget_shards(self) -> None:
        """Delete the shards no release directory kept (good or failed) names."""
        folder = self.prefix / SHARD_DIR
        releases = [p for p in self.releases.iterdir() if p.is_dir() and p.name[0] != "."]
        kept = {p.name.removeprefix("failed-") for p in releases}
        for marker in [m for m in self._release_shards if m not in kept]:
            del self._release_shards[marker]
        named: set[str] = set()
        for release in releases:
            named |= self._named_shards(release)
        on_disk = self._shards
        if on_disk is None:
            on_disk = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        for name in on_disk - named:
            (folder / name).unlink(missing_ok=True)
        self._shards = on_disk & named

    def _swap(self, target: Path) -> None:
        link = self.prefix / "current.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(os.path.relpath(target, self.prefix), link)
        os.rename(link, self.current)

    def _current_target(self) -> Path | None:
        try:
            return self.prefix / os.readlink(self.current)
        except OSError:
            return None

    def _prune(self) -> None:
        current = self._current_target()
        entries = [p for p in self.releases.iterdir() if not p.name.startswith(".")]
        good = [p for p in entries if not p.name.startswith("failed-") and p != current]
        failed = [p for p in entries if p.name.startswith("failed-")]
        for group, keep in ((good, KEEP_RELEASES - 1), (failed, KEEP_FAILED)):
            group.sort(key=lambda p: p.stat().st_mtime, reverse=True)
            for old in group[keep:]:
                shutil.rmtree(old, ignore_errors=True)
        self._forget_shards()

    def _forget(self, certs: set[str], links: set[str], tickets: set[str]) -> None:
        self._forget_tickets(tickets)
        if links:
            self._forget_certs(certs | {f"{DEFAULT_CERT}.pem"}, links)

    def _forget_tickets(self, keep: set[str]) -> None:
        """Delete the ticket keys the running release no longer names (secrets: not kept)."""
        for path in (self.prefix / "tickets").iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def _forget_certs(self, keep: set[str], links: set[str]) -> None:
        """Delete the certificate files (private keys) and name links the running release no
        longer uses, and the separate .crt / .key files of the layout before links. A file the
        previous apply used is kept one apply longer: nginx opens a certificate's file twice
        per handshake (chain, then key), and a handshake that followed a name's link just
        before it was pointed elsewhere still opens the old file. The first time the folders
        are listed; after that only what this engine kept is looked at (it is the only writer
        of these folders)."""
        certs = os.path.join(self.prefix, "certs")  # strings: see _write_cert_file
        names_dir = os.path.join(certs, "names")
        if self._kept is None:
            with os.scandir(certs) as found:
                files = {e.name for e in found if e.is_file()}
            names = os.listdir(names_dir)
        else:
            files = self._kept[0]
            names = [n for n in self._kept[1] if n not in links]
        spare = keep | self._kept_before
        for name in files - spare:
            if not name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(certs, name))
                self._cert_ids.discard(name.removesuffix(".pem"))
        for name in names:
            if name not in links and not name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(names_dir, name))
                self._links.pop(name, None)
        self._kept = ((files & spare) | keep, links)
        self._kept_before = {n for n in keep if n.endswith(".pem")}  # staples: read at load

    def _keep_failed(self, stage: Path) -> None:
        failed = self.releases / f"failed-{stage.name}"
        shutil.rmtree(failed, ignore_errors=True)
        os.rename(stage, failed)
        os.utime(failed)

    def _wait_marker(self, marker: str, deadline: float, old: set[int]) -> bool:
        sock = self.prefix / "status.sock"
        retired = not old
        while time.monotonic() < deadline:
            retired = retired or self._retire(old)
            if probe(sock) == marker:
                return True
            if not self.process.alive():
                return False
            time.sleep(0.002)
        return False

    def _retire(self, old: set[int]) -> bool:
        """Once a worker of the new release accepts, ask the previous release's workers to stop
        (SIGQUIT: they close their listening sockets and idle connections, and finish what
        they serve); True once asked. The master asks them the same, but only 100 ms after it
        started the new workers (a fixed ``ngx_msleep(100)`` in nginx's reload, with its
        signals blocked): until then they accept, and answered the probe with the previous
        release, so that most of the reload's time was that sleep. A worker sets its title to
        "worker process" when its initialisation is done and it enters its event loop; before
        that, connections wait in the listening socket's backlog, as they would after the
        master's own signal."""
        pid = self.process.pid
        if not pid:
            return False
        accepting = accepting_workers(pid)
        if all(w in old for w in accepting):
            return False
        for worker in accepting:
            if worker in old:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGQUIT)
        return True

    def _wait_old_workers(self, old: set[int], deadline: float) -> None:
        """Until the workers of the previous release stop accepting, a new request may still
        be served by the old config: wait for them, so that a returned apply means every new
        request sees the new release."""
        pid = self.process.pid
        while old and pid and time.monotonic() < deadline:
            if not old & set(accepting_workers(pid)):
                return
            self._retire(old)
            time.sleep(0.002)

    # ------------------------------------------------------------------ the interface

    def in_rotation(self) -> frozenset[tuple[str, str]]:
        """(pool id, backend key) of the backends the current release serves in rotation
        (none without a release). Read without the engine's lock: an apply swaps the release
        by a rename, and this reads the one before or the one after."""
        try:
            text = (self.current / "upstreams.conf").read_text()
        except (OSError, UnicodeDecodeError):
            return frozenset()
        return in_rotation(text)

    def running_marker(self) -> str | None:
        """The marker the running nginx serves (None when it is not running)."""
        return probe(self.prefix / "status.sock")

    def apply(
        self,
        config: EdgeConfig,
        health: LocalHealth,
        full_cert: Callable[[str], CertSpec] | None = None,
    ) -> ApplyResult:
        """Render, check, swap, reload and probe ``config``. Its certificates may come without
        their PEMs (the agent holds them by reference): ``full_cert`` gives one whole, read
        only for certificates whose files are not written yet."""
        start = time.monotonic()
        phases: list[tuple[str, float]] = []
        mark = [start]

        def step(name: str) -> None:
            now = time.monotonic()
            phases.append((name, (now - mark[0]) * 1000))
            mark[0] = now

        def result(ok: bool, changed: bool, marker: str, error: str | None) -> ApplyResult:
            duration = (time.monotonic() - start) * 1000
            return ApplyResult(ok, changed, marker, duration, error, tuple(phases))

        with self._lock, collector.paused():
            try:
                release = render_release(config, self.local, health, self._memo)
                new = self._new_certs(config)
                certs = {cert_file(c.id) for c in config.certs}
                https = self.local.https_port
                staples = staple_files(config, self.local.max_stapled) if https else {}
                certs |= set(staples)
                tickets = ticket_files(config)
                links = release.sni.targets if release.sni is not None else {}
            except (ValueError, LookupError) as exc:  # LookupError: a certificate not to be had
                return result(False, False, "", f"render: {exc}")
            step("render")
            running = self.process.alive() or self.process.adopt()
            try:
                self._prepare()
                self._write_shards(release.shards)
                self._write_certs(new, full_cert)
                for name, content in staples.items():  # before nginx -t, which loads them
                    self._write_cert_file(name, content)
                # Before any reload (and without one when only certificates changed): the
                # running workers read the links too, so no client sees an older one after.
                self._link_names(links)
                for name, content in tickets.items():
                    self._write_cert_file(name, content, folder="tickets")
            except (ValueError, LookupError) as exc:  # a certificate not to be had or written
                return result(False, False, release.marker, f"certificate: {exc}")
            except (OSError, NginxError) as exc:
                return result(False, False, release.marker, str(exc))
            step("files")
            if running and self.running_marker() == release.marker:
                self._forget(set(certs), set(links), set(tickets))
                return result(True, False, release.marker, None)
            try:
                stage = self._stage(release)
            except OSError as exc:
                return result(False, False, release.marker, str(exc))
            step("stage")
            error = check(self.binary, self.prefix, stage / "nginx.conf")
            step("check")
            if error is not None:
                self._keep_failed(stage)
                self._prune()
                return result(False, False, release.marker, error)
            previous = self._current_target()
            self._swap(stage)
            error = self._activate(release.marker, running)
            step("reload")
            if error is not None:
                if previous is not None and previous.exists():
                    self._swap(previous)
                    if self.process.alive():
                        self.process.signal(signal.SIGHUP)
                    else:
                        with contextlib.suppress(NginxError):
                            self.process.start()
                self._keep_failed(stage)
                self._prune()
                return result(False, False, release.marker, error)
            self._prune()
            self._forget(set(certs), set(links), set(tickets))
            step("forget")
            return result(True, True, release.marker, None)

    def _activate(self, marker: str, running: bool) -> str | None:
        deadline = time.monotonic() + PROBE_DEADLINE
        old: set[int] = set()
        if running:
            pid = self.process.pid
            old = set(accepting_workers(pid)) if pid else set()
            self.process.signal(signal.SIGHUP)
        else:
            try:
                self.process.start()
            except NginxError as exc:
                return str(exc)
        if self._wait_marker(marker, deadline, old):
            self._wait_old_workers(old, deadline)
            return None
        if not self.process.alive():
            return "nginx exited while loading the new release"
        return "nginx did not serve the new release within the deadline"

    def ensure_running(self) -> bool:
        """Restart nginx from ``current`` if it died; True if it did."""
        with self._lock:
            if self.process.alive() or self.process.adopt():
                return False
            if self._current_target() is None:
                return False
            self._prepare()
            self.process.start()
            return True

    def stop(self) -> None:
        with self._lock:
            if self.process.alive() or self.process.adopt():
                self.process.stop()

    def purge(self, task: PurgeTask) -> int:
        return purge_cache(self.cache_dir, task)

    def stats(self) -> dict[str, float]:
        pid = self.process.pid
        if pid is None:
            return {"nginx_pss_mib": 0.0, "nginx_workers": 0.0}
        pss, _ = tree_pss_mib(pid)
        workers = len(accepting_workers(pid))
        return {"nginx_pss_mib": round(pss, 2), "nginx_workers": float(workers)}
