"""The node's content-addressed store of the objects manifests name (zones, certificates).

``<state dir>/objects/<sha256>`` holds the canonical JSON body whose sha256 is its name
(``edgeplane.protocol.config.object_hash``), mode 0600 (certificates hold private keys). A body
is written whole (temporary file, rename) after its hash was checked, so a file present holds
its object; one that does not parse is dropped and fetched again. Objects that no manifest
kept names are removed (``prune``). Nothing here is ever logged but hashes. A body may hold
fields this agent does not know (a newer control plane's): they are left out, and named in
``ignored`` (``zones[].field``, ``certs[].field``: ``edgeplane.protocol.lenient``).

Certificates are held in memory by reference: ``cert`` and ``certs`` give them without their
PEM texts (``cert_pem`` and ``key_pem`` empty: 10,000 certificates and keys are ~30 MiB of
parsed objects), and ``full_cert`` reads one whole from disk when its files are written.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from edgeplane.protocol import lenient
from edgeplane.protocol.config import CertSpec, ZoneSpec, canonical_body, object_hash

log = logging.getLogger(__name__)

OBJECTS_DIR = "objects"
_SLIM_FIELDS = set(CertSpec.model_fields)  # every certificate held without PEMs shares it


class ObjectError(LookupError):
    """An object is missing from the store or does not hold what its name says."""


class ObjectStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._known: set[str] | None = None
        self._certs: dict[str, CertSpec] = {}  # certificates in use without PEMs, by hash
        self._cert_objects: dict[str, str] = {}  # their certificate id -> object hash
        self.ignored: set[str] = set()  # fields of the objects read that were not known

    def _path(self, digest: str) -> str:
        """The object's file. A string, not a ``Path``: pathlib interns every part of every
        path it makes, and the interpreter's table of interned strings grew by megabytes
        (never given back) for the node's 20,000 object names."""
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ObjectError(f"not an object hash: {digest[:80]!r}")
        return os.path.join(self.directory, digest)

    def known(self) -> set[str]:
        if self._known is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            self._known = {n for n in os.listdir(self.directory) if len(n) == 64}
        return self._known

    def missing(self, hashes: Iterable[str]) -> list[str]:
        known = self.known()
        if isinstance(hashes, (set, frozenset)):
            return sorted(hashes - known)  # a set difference: 20,000 hashes, in C
        return list(dict.fromkeys(h for h in hashes if h not in known))

    def put(self, digest: str, doc: Any) -> None:
        """Store the object ``doc`` (parsed JSON) under ``digest``, which must be its hash."""
        body = canonical_body(doc)
        if object_hash(body) != digest:
            raise ObjectError(f"object {digest} does not match its hash")
        path = self._path(digest)
        tmp = os.path.join(self.directory, f".{digest}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.rename(tmp, path)
        self.known().add(digest)

    def read(self, digest: str) -> bytes:
        try:
            with open(self._path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            self.known().discard(digest)
            raise ObjectError(f"object {digest} is not in the store") from None

    def _drop(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(digest))
        self.known().discard(digest)

    def zone(self, digest: str) -> ZoneSpec:
        try:
            zone, ignored = lenient.parse_json(ZoneSpec, self.read(digest))
        except ValidationError as exc:
            self._drop(digest)
            raise ObjectError(
                f"object {digest} is not a zone ({exc.error_count()} errors)"
            ) from None
        if ignored:
            self.ignored.update(f"zones[].{p}" for p in ignored)
        return zone

    def _parse_cert(self, digest: str) -> CertSpec:
        try:
            cert, ignored = lenient.parse_json(CertSpec, self.read(digest))
        except ValidationError as exc:
            self._drop(digest)
            raise ObjectError(
                f"object {digest} is not a certificate ({exc.error_count()} errors)"
            ) from None
        if ignored:
            self.ignored.update(f"certs[].{p}" for p in ignored)
        return cert

    def cert(self, digest: str) -> CertSpec:
        """The certificate ``digest`` names, without its PEM texts (see ``full_cert``)."""
        hit = self._certs.get(digest)
        if hit is None:
            full = self._parse_cert(digest)
            # Built without validation and with one shared set of fields: 3.4 MiB for 10,000
            # certificates where ``model_copy`` (a copy of both per certificate) took 7.9.
            hit = CertSpec.model_construct(
                _SLIM_FIELDS, **{**full.__dict__, "cert_pem": "", "key_pem": ""}
            )
            self._certs[digest] = hit
            self._cert_objects[full.id] = digest
        return hit

    def full_cert(self, cert_id: str) -> CertSpec:
        """The certificate ``cert_id`` of those last given by ``cert``, whole (from disk)."""
        digest = self._cert_objects.get(cert_id)
        if digest is None:
            raise ObjectError(f"certificate {cert_id} is not among those in use")
        return self._parse_cert(digest)

    def certs(self, hashes: Iterable[str]) -> tuple[CertSpec, ...]:
        """The certificates ``hashes`` name (without PEMs); those no longer named are
        forgotten."""
        wanted = list(hashes)
        held = tuple(map(self._certs.get, wanted))  # the common case: all held, looked up in C
        if None in held:
            out = tuple(self.cert(h) for h in wanted)
        else:
            out = cast(tuple[CertSpec, ...], held)
        gone = self._certs.keys() - set(wanted)
        if gone:
            for digest in gone:
                del self._certs[digest]
            self._cert_objects = {i: h for i, h in self._cert_objects.items() if h not in gone}
        return out

    def prune(self, keep: set[str]) -> int:
        """Remove every object not in ``keep``; the number removed."""
        removed = 0
        # A copy: a fetch in another thread may add objects meanwhile.
        for digest in [h for h in list(self.known()) if h not in keep]:
            self._drop(digest)
            removed += 1
        return removed
