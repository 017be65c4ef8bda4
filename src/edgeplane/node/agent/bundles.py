"""A node's static bundles: fetched once by hash, verified, unpacked, checked, kept a while.

``BundleStore.prepare`` makes every bundle of a snapshot present on disk under
``<nginx prefix>/bundles/<sha256>/`` with its manifest beside as ``<sha256>.json``. A bundle is
downloaded once, and unpacked as it arrives (a worker thread reads the download through a
``FilePipe``): ``edgeplane.bundles.unpack`` verifies the archive's hash and every file's, links
files the node has already (same sha256, in a bundle on disk) instead of writing them again,
and renames the finished directory into place only when everything matched, so nginx never
sees half a bundle nor an unverified one. Fetches start as soon as a snapshot names a bundle,
served or prefetched (a version on its canary elsewhere). A bundle that cannot be had is
replaced by the one the site serves now, if any, and reported ``failed``. After nginx serves
the new snapshot, ``check`` requests a sample of each new bundle's files (and its check path)
through the node's own nginx and compares them with the manifest: the node's report
(``active`` or ``failed``) goes to the control plane in the next heartbeat, which moves the
rollout on or rolls it back. ``collect`` removes bundles no snapshot names, keeping the newest
few for instant rollbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from edgeplane.bundles import BundleError
from edgeplane.bundles.unpack import CHUNK, unpack_stream
from edgeplane.node.agent.pipe import FilePipe
from edgeplane.node.agent.tasks import cancel_all
from edgeplane.node.nginx.render_bundles import immutable_map
from edgeplane.protocol.config import BundleSpec, EdgeConfig
from edgeplane.protocol.messages import BundleReport

log = logging.getLogger("edgeplane.agent.bundles")

KEEP = 5  # bundles kept on disk beyond those the snapshot names
SAMPLE = 12  # files of a new bundle requested by its check

Download = Callable[[str, Callable[[bytes], object]], Awaitable[int]]  # (bundle, write) -> bytes


class BundleStore:
    def __init__(self, root: Path, download: Download) -> None:
        self.root = root
        self.download = download
        self.reports: dict[str, BundleReport] = {}  # site -> report
        self._manifests: dict[str, dict[str, Any]] = {}
        self._checked: dict[str, str] = {}  # site -> deployment whose check ran
        self._fetches: dict[str, asyncio.Task[str | None]] = {}  # bundle -> its fetch

    def path(self, bundle: str) -> Path:
        return self.root / bundle

    def manifest_path(self, bundle: str) -> Path:
        return self.root / f"{bundle}.json"

    def have(self, bundle: str) -> bool:
        """Unpacked (its files in ``<hash>/``), its immutable paths' map for nginx
        (``<hash>.immutable``) and its manifest (``<hash>.json``) beside."""
        return (
            self.path(bundle).is_dir()
            and (self.root / f"{bundle}.immutable").is_file()
            and self.manifest_path(bundle).is_file()
        )

    def manifest(self, bundle: str) -> dict[str, Any]:
        hit = self._manifests.get(bundle)
        if hit is None:
            hit = json.loads(self.manifest_path(bundle).read_text())
            self._manifests[bundle] = hit
        return hit

    def reuse(self) -> dict[str, str]:
        """Every file of the bundles on disk, by sha256: what a new bundle may link to
        instead of writing it again (``edgeplane.bundles.unpack``)."""
        out: dict[str, str] = {}
        if not self.root.is_dir():
            return out
        for entry in self.root.iterdir():
            bundle = entry.name
            if bundle.startswith(".") or not entry.is_dir() or not self.have(bundle):
                continue
            try:
                files = self.manifest(bundle).get("files") or {}
            except (OSError, ValueError):
                continue
            base = str(entry)
            for path, meta in files.items():
                out[meta["sha256"]] = f"{base}/{path}"
                for suffix, key in ((".gz", "gzip"), (".br", "br")):
                    if meta.get(key):
                        out[meta[key]["sha256"]] = f"{base}/{path}{suffix}"
        return out

    def _unpack(self, source: FilePipe, bundle: str, counts: dict[str, int]) -> None:
        """Unpack ``bundle`` as its archive arrives through ``source`` (in a thread)."""
        archive = io.BufferedReader(source, CHUNK)
        try:
            manifest = unpack_stream(archive, self.path(bundle), bundle, self.reuse(), counts)
        finally:
            archive.detach()  # the pipe stays open until the download is done with it
        # nginx includes the immutable paths' map: it must exist before the manifest does
        # (the manifest marks the bundle as had).
        for name, text in (
            (f"{bundle}.immutable", immutable_map(bundle, manifest)),
            (f"{bundle}.json", json.dumps(manifest)),
        ):
            temp = self.root / f".{name}.tmp"
            temp.write_text(text)
            temp.chmod(0o644)
            os.replace(temp, self.root / name)
        self._manifests[bundle] = manifest

    def _report(self, spec: BundleSpec, state: str, error: str | None = None) -> None:
        self.reports[spec.site] = BundleReport(
            deployment=spec.deployment,
            bundle=spec.hash,
            state=state,
            error=error[:4000] if error else None,
            at=datetime.now(UTC),
        )

    async def _download(self, bundle: str) -> str | None:
        """Fetch and unpack ``bundle``; None when done, else why not.

        The archive is unpacked (and hashed) in a thread as it arrives, behind the download
        (``FilePipe``): one pass over it, no wait for the last byte before the first file."""
        part = self.root / f".{bundle}.part"
        at = time.time()
        started = fetched = time.monotonic()
        counts: dict[str, int] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            pipe = FilePipe(part)
        except OSError as exc:
            return f"bundle {bundle[:12]} not fetched: {exc}"
        unpacking = asyncio.ensure_future(asyncio.to_thread(self._unpack, pipe, bundle, counts))
        unpacking.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen below
        try:
            try:
                size = await self.download(bundle, pipe.write_chunk)
            except BaseException as exc:
                pipe.finish(exc)  # the unpack stops, and removes what it wrote
                raise
            pipe.finish()
            fetched = time.monotonic()
            await asyncio.shield(unpacking)
            log.info(
                "bundle %s fetched (%d bytes) in %.0f ms, verified and unpacked in %.0f ms "
                "(fetch started at %.3f; %d files written, %d linked to earlier bundles)",
                bundle[:12],
                size,
                (fetched - started) * 1000,
                (time.monotonic() - fetched) * 1000,
                at,
                counts.get("written", 0),
                counts.get("linked", 0),
            )
            return None
        except BundleError as exc:
            return f"bundle {bundle[:12]} refused: {exc}"
        except Exception as exc:  # the control plane is unreachable, the disk is full, ...
            return f"bundle {bundle[:12]} not fetched: {exc}"
        finally:
            if unpacking.done():
                pipe.close()
            else:  # cancelled: the thread ends on its own (the pipe is finished)
                unpacking.add_done_callback(lambda _: pipe.close())
            with contextlib.suppress(FileNotFoundError):
                part.unlink()

    def _fetch_task(self, bundle: str) -> asyncio.Task[str | None]:
        """The one fetch of ``bundle`` (a new one when the last failed or none ran)."""
        task = self._fetches.get(bundle)
        if task is None or (task.done() and (task.cancelled() or task.result() is not None)):
            task = self._fetches[bundle] = asyncio.create_task(self._download(bundle))
        return task

    def prefetch(self, config: EdgeConfig) -> None:
        """Start fetching the bundles the node will serve next, without waiting."""
        for bundle in config.prefetch:
            if not self.have(bundle):
                self._fetch_task(bundle)
        for bundle in [b for b, t in self._fetches.items() if t.done()]:
            del self._fetches[bundle]

    async def _fetch(self, spec: BundleSpec) -> str | None:
        return await asyncio.shield(self._fetch_task(spec.hash))

    async def prepare(
        self, config: EdgeConfig, serving: EdgeConfig | None
    ) -> tuple[EdgeConfig, bool]:
        """``config`` with every bundle on disk (one that is not: the one served now, or none);
        and whether all of them were had."""
        before = {b.site: b for b in serving.bundles} if serving is not None else {}
        chosen: list[BundleSpec] = []
        complete = True
        missing = [b for b in config.bundles if not self.have(b.hash)]
        for b in missing:
            self._report(b, "fetching")
        errors = await asyncio.gather(*(self._fetch(b) for b in missing))
        failed = {b.site: e for b, e in zip(missing, errors, strict=True) if e is not None}
        for b in config.bundles:
            error = failed.get(b.site)
            if error is None:
                chosen.append(b)
                continue
            complete = False
            log.error("%s", error)
            self._report(b, "failed", error)
            old = before.get(b.site)
            if old is not None and self.have(old.hash):
                chosen.append(old)
        for site in [s for s in self.reports if s not in {b.site for b in config.bundles}]:
            del self.reports[site]  # the site serves no bundle any more
            self._checked.pop(site, None)
        effective = tuple(chosen)
        if effective == config.bundles:
            return config, complete
        return config.model_copy(update={"bundles": effective}), complete

    async def check(self, config: EdgeConfig, base: str, tls_base: str | None) -> bool:
        """Check each bundle not checked yet through nginx; whether any report changed."""
        hosts = {s.id: s.domains[0] for s in config.sites if s.domains}
        changed = False
        for b in config.bundles:
            if self._checked.get(b.site) == b.deployment:
                continue
            report = self.reports.get(b.site)
            if report is not None and report.state == "failed" and report.bundle == b.hash:
                continue  # not fetched: nothing to check
            host = hosts.get(b.site)
            at = time.time()  # nginx serves it: the check follows the apply
            started = time.monotonic()
            error = (
                "the site has no domain to check it on"
                if host is None
                else await self._check_one(b, host, base, tls_base)
            )
            self._checked[b.site] = b.deployment
            self._report(b, "failed" if error else "active", error)
            if error:
                log.error("the check of %s (%s) failed: %s", b.deployment, b.site, error)
            else:
                log.info(
                    "deployment %s served by nginx at %.3f, checked in %.0f ms",
                    b.deployment,
                    at,
                    (time.monotonic() - started) * 1000,
                )
            changed = True
        return changed

    async def _check_one(
        self, b: BundleSpec, host: str, base: str, tls_base: str | None
    ) -> str | None:
        try:
            manifest = await asyncio.to_thread(self.manifest, b.hash)
        except (OSError, ValueError) as exc:
            return f"the manifest cannot be read: {exc}"
        files: dict[str, Any] = manifest.get("files") or {}
        paths = sorted(files)
        step = max(1, len(paths) // SAMPLE)
        sample = paths[::step][:SAMPLE]
        if "index.html" in files and "index.html" not in sample:
            sample.append("index.html")
        async with httpx.AsyncClient(timeout=5.0, verify=False) as http:

            async def get(path: str) -> httpx.Response:
                url = f"{base}{path}"
                headers = {"Host": host, "Accept-Encoding": "identity"}
                r = await http.get(url, headers=headers)
                if r.status_code in (301, 302, 307, 308) and tls_base is not None:
                    # the site's name in the handshake: the edge refuses one naming no site
                    r = await http.get(
                        f"{tls_base}{path}", headers=headers, extensions={"sni_hostname": host}
                    )
                return r

            for rel in sample:
                try:
                    r = await get("/" + rel)
                except httpx.HTTPError as exc:
                    return f"/{rel}: {type(exc).__name__}: {exc}"
                if r.status_code != 200:
                    return f"/{rel} answered {r.status_code}"
                if hashlib.sha256(r.content).hexdigest() != files[rel].get("sha256"):
                    return f"/{rel} is not the bundle's file"
                if r.headers.get("x-edge-deployment") != b.deployment:
                    return f"/{rel} was not served by version {b.version}"
            if b.check_path:
                try:
                    r = await get(b.check_path)
                except httpx.HTTPError as exc:
                    return f"{b.check_path}: {type(exc).__name__}: {exc}"
                if r.status_code >= 400:
                    return f"the check path {b.check_path} answered {r.status_code}"
        return None

    def collect(self, config: EdgeConfig) -> int:
        """Remove bundles that neither the snapshot names nor are among the newest KEEP."""
        if not self.root.is_dir():
            return 0
        named = {b.hash for b in config.bundles} | set(config.prefetch)

        def used_at(p: Path) -> float:  # the manifest's time: unpacked or last named
            try:
                return self.manifest_path(p.name).stat().st_mtime
            except OSError:
                return p.stat().st_mtime

        for bundle in named:  # named now: the newest
            with contextlib.suppress(OSError):
                os.utime(self.manifest_path(bundle))
        others = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and p.name not in named),
            key=used_at,
            reverse=True,
        )
        removed = 0
        for old in others[KEEP:]:
            # An unpack in progress, or one left by a crash an hour ago or more.
            if old.name.startswith(".") and time.time() - old.stat().st_mtime < 3600:
                continue
            shutil.rmtree(old, ignore_errors=True)
            for extra in (self.manifest_path(old.name), self.root / f"{old.name}.immutable"):
                with contextlib.suppress(FileNotFoundError):
                    extra.unlink()
            self._manifests.pop(old.name, None)
            removed += 1
        return removed

    async def close(self) -> None:
        await cancel_all(list(self._fetches.values()))

    def report_models(self) -> dict[str, BundleReport]:
        return dict(self.reports)
