"""How the edge speaks TLS to a private origin: the client certificate it presents, and how it
verifies the origin's certificate (a pinned CA, or pinned public keys).

One ``OriginTls`` per pool of backends (nginx sets these per proxied location, so per pool,
not per backend): a load balancer's ``tls``, or the ``tls`` of a CDN config's URL origins
(every URL origin of a project is one pool: they must all give the same settings).

- ``client_certificate``: the edge presents the project's client certificate, issued by the
  internal CA (``edgeplane.certificates.origin_client``), so that the origin can refuse every
  other client;
- ``verify``: ``none`` (today's behaviour: any certificate), ``ca`` (the chain must lead to
  ``ca_pem`` and name ``server_name``, checked by nginx for every connection), or ``pin`` (the
  public key of the origin's certificate, or of one of its chain, must be one of ``pins``:
  checked by every edge node's health checks, which take a backend out at the first mismatch,
  and keep a backend out until a check has seen a pinned key; with ``ca_pem`` as well, nginx
  also verifies the chain);
- ``pins``: ``sha256/<base64 of the SHA-256 of the DER SubjectPublicKeyInfo>``, as HPKP
  (RFC 7469) and ``openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst
  -sha256 -binary | base64`` spell them;
- ``server_name``: the name sent in SNI and checked in the certificate; by default the
  request's host (as the edge sends SNI today).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeplane.model.common import Bool, Input, MultilineText, Text
from edgeplane.protocol.origin_tls import spki_pin_of_der

if TYPE_CHECKING:  # loaded when a PEM is parsed (the CLI and models import this module)
    from cryptography import x509

PIN_PATTERN = r"^sha256/[A-Za-z0-9+/]{43}=$"
_PIN = re.compile(PIN_PATTERN)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
MAX_CA_PEM = 64 * 1024
MAX_PINS = 16
_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----"
)

Verify = Literal["none", "ca", "pin"]


def spki_pin(cert: x509.Certificate) -> str:
    """The pin of a certificate's public key: ``sha256/<base64>`` of its DER SPKI."""
    from cryptography.hazmat.primitives import serialization

    return spki_pin_of_der(cert.public_bytes(serialization.Encoding.DER))


def parse_ca_pem(text: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle (at least one, nothing else in it); ValueError says
    what is wrong."""
    from cryptography import x509

    blocks = _PEM_CERT.findall(text)
    rest = _PEM_CERT.sub("", text).strip()
    if not blocks:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    if rest:
        raise ValueError("holds something besides PEM certificates (a key? give certificates only)")
    certs: list[x509.Certificate] = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError:
            raise ValueError(f"certificate {i + 1} of the PEM is not a valid certificate") from None
    return certs


def canonical_ca_pem(text: str) -> str:
    """The bundle re-encoded: one PEM per certificate, LF line ends, a final newline."""
    from cryptography.hazmat.primitives import serialization

    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in parse_ca_pem(text))


def located(field: str, message: str) -> ValidationError:
    """An error located at ``field`` of the model (not at the model as a whole)."""
    return ValidationError.from_exception_data(
        "origin_tls",
        [
            InitErrorDetails(
                type=PydanticCustomError("origin_tls", message),
                loc=(field,),
                input=None,
            )
        ],
    )


class OriginTls(Input):
    """TLS from the edge to the origin (HTTPS backends only)."""

    client_certificate: Bool = Field(
        False,
        description="present the project's client certificate (from the internal CA) to the "
        "origin, which can then refuse any other client",
    )
    verify: Verify = Field(
        "none",
        description="none: accept any certificate; ca: the chain must lead to ca_pem (nginx "
        "checks every connection); pin: a public key of the chain must be one of pins (health "
        "checks take a mismatching backend out)",
    )
    ca_pem: MultilineText | None = Field(
        None,
        max_length=MAX_CA_PEM,
        description="the CA certificate(s) the origin's chain must lead to (PEM)",
    )
    pins: list[Text] = Field(
        default_factory=list,
        max_length=MAX_PINS,
        description="sha256/<base64 SHA-256 of the DER SubjectPublicKeyInfo> (as HPKP)",
        json_schema_extra={"items": {"type": "string", "pattern": PIN_PATTERN}},
    )
    server_name: Text | None = Field(
        None,
        max_length=253,
        description="the name sent in SNI and checked in the origin's certificate; "
        "default: the request's host",
    )

    @field_validator("ca_pem")
    @classmethod
    def _ca(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return canonical_ca_pem(value)

    @field_validator("pins")
    @classmethod
    def _pins(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            pin = value
            if not _PIN.match(pin):
                raise ValueError(
                    f"{value!r} is not a pin: sha256/ then the base64 of a 32-byte SHA-256"
                )
            try:
                raw = base64.b64decode(pin[7:], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{value!r}: the part after sha256/ is not base64") from None
            if len(raw) != 32:
                raise ValueError(f"{value!r}: a SHA-256 is 32 bytes, not {len(raw)}")
            if pin not in out:
                out.append(pin)
        return out

    @field_validator("server_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().rstrip(".").lower()
        if not _HOSTNAME.match(name):
            raise ValueError(f"{value!r} is not a host name")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> OriginTls:
        if self.verify == "ca" and self.ca_pem is None:
            raise located("ca_pem", "verify ca needs ca_pem (the CA the origin's chain leads to)")
        if self.verify == "pin" and not self.pins:
            raise located("pins", "verify pin needs pins (sha256/... of the origin's public key)")
        if self.verify != "pin" and self.pins:
            raise located("pins", "pins are checked only with verify pin")
        if self.verify == "none" and self.ca_pem is not None:
            raise located("ca_pem", "ca_pem is checked only with verify ca (or pin)")
        return self

    @property
    def active(self) -> bool:
        """Anything but today's behaviour (no client certificate, no verification)."""
        return self.client_certificate or self.verify != "none"


def origin_tls_needs_https(url: str | None, load_balancer: str | None) -> None:
    """A CDN origin's ``tls`` is for an https URL origin (a load balancer has its own)."""
    if load_balancer is not None:
        raise located("tls", "a load balancer origin takes its TLS settings from the load balancer")
    if url is not None and not url.startswith("https://"):
        raise located("tls", "TLS settings are for https:// origins")
