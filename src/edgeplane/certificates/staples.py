"""OCSP staples, the pure part: where a certificate's status is asked, the request, the checks
a response must pass before the edge staples it, and when to ask again.

A response is stapled only when it is successful, says ``good`` for this certificate (serial
and issuer), is signed by the issuer or by a responder the issuer delegated (``OCSPSigning``),
and is fresh (``thisUpdate`` not in the future, ``nextUpdate`` present and ahead). It is
fetched again at half of its validity; a failed fetch is retried after ``RETRY_S`` doubling up
to ``RETRY_MAX_S``, and the last good response is kept until its ``nextUpdate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

CLOCK_SKEW = timedelta(minutes=5)
RETRY_S = 60.0
RETRY_MAX_S = 3600.0
MIN_REFRESH = timedelta(minutes=5)  # a responder with a tiny window is not asked in a loop
# When one staple is due, those due within this much later are refreshed with it: new staples
# reach the edge in batches (each a reload of the stapling blocks), not one by one.
BATCH_AHEAD = timedelta(hours=12)


class StapleError(ValueError):
    """A response that must not be stapled; the message says why."""


@dataclass(frozen=True)
class Checked:
    status: str  # good
    this_update: datetime
    next_update: datetime


def ocsp_url(leaf: x509.Certificate) -> str | None:
    """The first http(s) OCSP responder the leaf names (Authority Information Access)."""
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for access in aia:
        if access.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            access.access_location, x509.UniformResourceIdentifier
        ):
            url = access.access_location.value
            if url.lower().startswith(("http://", "https://")):
                return url
    return None


def chain(cert_pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(cert_pem.encode())


def issuer_of(leaf: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate:
    """The certificate among ``candidates`` (the rest of the chain, then trusted roots) that
    signed ``leaf``."""
    for candidate in candidates:
        if candidate.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    raise StapleError("the issuer of the certificate is not in its chain")


def request_der(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """An OCSP request for ``leaf`` (SHA-1 CertID, what every responder understands)."""
    built = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    return built.public_bytes(serialization.Encoding.DER)


def _verify_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _delegated(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    """Signed by a responder certificate the response carries, issued by ``issuer`` for OCSP
    signing (RFC 6960 4.2.2.2)."""
    for responder in response.certificates:
        try:
            responder.verify_directly_issued_by(issuer)
            eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and _verify_signature(response, responder):
            return True
    return False


def check(
    response_der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> Checked:
    """The response's validity for stapling ``leaf`` (raises ``StapleError`` saying why not)."""
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        raise StapleError(f"not a DER OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise StapleError(f"the responder answered {response.response_status.name.lower()}")
    if response.serial_number != leaf.serial_number:
        raise StapleError("the response is for another certificate (serial)")
    expected = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, response.hash_algorithm)
    wanted = expected.build()
    if (response.issuer_key_hash, response.issuer_name_hash) != (
        wanted.issuer_key_hash,
        wanted.issuer_name_hash,
    ):
        raise StapleError("the response is for a certificate of another issuer")
    if not (_verify_signature(response, issuer) or _delegated(response, issuer)):
        raise StapleError("the response is not signed by the issuer or a responder it delegated")
    this_update = response.this_update_utc
    next_update = response.next_update_utc
    if this_update > now + CLOCK_SKEW:
        raise StapleError(f"the response is from the future (thisUpdate {this_update})")
    if next_update is None:
        raise StapleError("the response has no nextUpdate: it cannot be stapled for a time")
    if next_update <= now:
        raise StapleError(f"the response is stale (nextUpdate {next_update})")
    status = response.certificate_status
    if status != ocsp.OCSPCertStatus.GOOD:
        raise StapleError(f"the responder says the certificate is {status.name.lower()}")
    return Checked("good", this_update, next_update)


def refresh_at(this_update: datetime, next_update: datetime, now: datetime) -> datetime:
    """When to fetch the next response: at half of this one's validity (not before
    ``MIN_REFRESH`` from now)."""
    half = this_update + (next_update - this_update) / 2
    return max(half, now + MIN_REFRESH)


def horizon(next_fetches: list[datetime], now: datetime) -> datetime:
    """Fetch every staple due before this: ``now``, or ``now + BATCH_AHEAD`` when one is due
    (so that refreshes spread over a day come in a few batches)."""
    return now + BATCH_AHEAD if any(at <= now for at in next_fetches) else now


def retry_at(attempts: int, now: datetime, next_update: datetime | None = None) -> datetime:
    """After ``attempts`` failed fetches in a row: ``RETRY_S`` doubling up to ``RETRY_MAX_S``,
    and not after the kept response's ``nextUpdate`` (when there is one)."""
    wait = min(RETRY_S * 2 ** max(attempts - 1, 0), RETRY_MAX_S)
    at = now + timedelta(seconds=wait)
    return min(at, next_update) if next_update is not None and next_update > now else at


def usable(next_update: datetime | None, now: datetime) -> bool:
    """A kept response may still be stapled."""
    return next_update is not None and next_update > now
