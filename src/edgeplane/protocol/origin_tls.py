"""TLS from the edge to a pool's origins, as a snapshot carries it (``PoolSpec.tls``).

``client_cert`` names a ``CertSpec`` of the snapshot's ``certs`` (the project's client
certificate, no SNI names: never served), which nginx presents to the origins; ``verify``
``ca`` makes nginx verify the origin's chain against ``ca_pem`` and ``server_name`` (the
request's host when None); ``pin`` makes the agent's health checks compare the public keys of
the origin's chain with ``pins`` and keep a backend out of rotation until one matches
(``edgeplane.node.agent.origin_tls``). The model of the settings is
``edgeplane.model.origin_tls``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict


class OriginTlsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_cert: str | None = None  # a CertSpec id (sha256 of its chain)
    verify: Literal["none", "ca", "pin"] = "none"
    ca_pem: str | None = None  # with verify "ca" (and optionally "pin"): the trusted CA(s)
    pins: tuple[str, ...] = ()  # with verify "pin": sha256/<base64 of the SPKI's SHA-256>
    server_name: str | None = None  # SNI and the name checked; None: the request's host

    @property
    def pinned(self) -> bool:
        return self.verify == "pin" and bool(self.pins)


def spki_pin_of_der(der: bytes) -> str:
    """The pin of a DER certificate's public key: ``sha256/<base64>`` of the SHA-256 of its
    DER SubjectPublicKeyInfo (as HPKP). ``cryptography`` is loaded here, when a pin is
    compared, not with the module (an agent without pinned origins never loads it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
