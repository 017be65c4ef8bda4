"""The internal CA's OCSP responder (RFC 6960): the status of a certificate it issued.

``respond`` takes the DER of an OCSP request and answers the DER of a response signed by the
CA that issued the certificate (the intermediate, or a legacy root that signs its leaves
itself), valid ``VALIDITY`` from now: ``good``, ``revoked`` (revoked or deleted, with the time
and the reason) or ``unknown`` (a serial this CA never issued). A request for another CA's
certificate gets the ``unauthorized`` status; one that does not parse raises
``MalformedRequest`` (the API answers 400). Pure but for the serial lookup it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from edgeplane.store.tables import IssuedSerialRow

VALIDITY = timedelta(days=4)
BACKDATE = timedelta(minutes=5)  # clocks of verifiers may be a little behind
MAX_REQUEST_BYTES = 16 * 1024


class MalformedRequest(ValueError):
    """The body is not one DER OCSP request for one certificate."""


Signer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def parse(request_der: bytes) -> ocsp.OCSPRequest:
    if not request_der:
        raise MalformedRequest("empty OCSP request")
    if len(request_der) > MAX_REQUEST_BYTES:
        raise MalformedRequest(f"OCSP request over {MAX_REQUEST_BYTES} bytes")
    try:
        return ocsp.load_der_ocsp_request(request_der)
    except (ValueError, NotImplementedError) as exc:
        # cryptography refuses requests for several certificates with ValueError too.
        raise MalformedRequest(f"not a DER OCSP request for one certificate: {exc}") from None


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes | None:
    """RFC 6960 4.1.1: the hash of the issuer's public key, the value of its BIT STRING (for
    the internal CA's EC keys: the uncompressed point)."""
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return None
    digest = hashes.Hash(algorithm)
    digest.update(
        public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    return digest.finalize()


def _name_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(cert.subject.public_bytes())
    return digest.finalize()


def issuer_of(request: ocsp.OCSPRequest, signers: list[Signer]) -> Signer | None:
    """The CA certificate (and key) the request's CertID names, if it is ours."""
    algorithm = request.hash_algorithm
    for cert, key in signers:
        if request.issuer_key_hash == _key_hash(cert, algorithm) and (
            request.issuer_name_hash == _name_hash(cert, algorithm)
        ):
            return cert, key
    return None


def respond(
    request_der: bytes,
    signers: list[Signer],
    lookup: Callable[[int], IssuedSerialRow | None],
    now: datetime,
) -> bytes:
    """The DER OCSP response to ``request_der`` (raises ``MalformedRequest``)."""
    request = parse(request_der)
    signer = issuer_of(request, signers)
    if signer is None:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        ).public_bytes(serialization.Encoding.DER)
    issuer, key = signer
    row = lookup(request.serial_number)
    revocation_time: datetime | None = None
    reason: x509.ReasonFlags | None = None
    if row is None:
        status = ocsp.OCSPCertStatus.UNKNOWN
    elif row.revoked_at is not None:
        status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = row.revoked_at
        reason = x509.ReasonFlags(row.revocation_reason or "unspecified")
    else:
        status = ocsp.OCSPCertStatus.GOOD
    this_update = (now - BACKDATE).replace(microsecond=0)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=this_update + VALIDITY,
            revocation_time=revocation_time,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    )
    nonce = _nonce(request)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def good_response(leaf: x509.Certificate, signer: Signer, now: datetime) -> bytes:
    """The ``good`` response for a leaf just issued by ``signer``: its first staple, made
    with the certificate instead of a request."""
    issuer, key = signer
    this_update = (now - BACKDATE).replace(microsecond=0)
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this_update,
            next_update=this_update + VALIDITY,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
