"""The ACME client Edgeplane gets public certificates with, on certbot's ``acme`` library.

Three steps, each one call: ``new_account_key()`` makes an account key (ECDSA P-256, signed
ES256), ``register()`` turns it into an account at the CA (an already registered key gives
back its existing account), and ``obtain()`` orders a certificate for a list of names, proving
control of each through a ``ChallengeSink`` the caller provides (the edge serves HTTP-01 tokens
and DNS-01 TXT records), and returns the key, the leaf and the chain as served.

Every failure is an ``AcmeError`` whose message names what failed (the order, an
authorization's identifier, the server) and the CA's problem document. ``badNonce`` answers
are retried up to ``AcmeSettings.nonce_retries`` times on every request (the library alone
retries once), and polling honours ``Retry-After`` (the library's own polling sleeps a fixed
second and ignores it for authorizations). What was published through the sink is always
unpublished, also when the order fails.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, Protocol

import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from josepy import errors as jose_errors
from josepy import jwa, jwk

from edgeplane import metrics

log = logging.getLogger(__name__)

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DIRECTORY_NAMES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}
USER_AGENT = "edgeplane-acme"

ChallengeType = Literal["http-01", "dns-01"]
KeyType = Literal["ec256", "rsa2048"]

POLL_FIRST = 0.1  # seconds before the first poll when the CA sends no Retry-After
POLL_GROWTH = 1.5
POLL_MAX = 2.0


def directory_url(name_or_url: str) -> str:
    """The directory URL for ``letsencrypt``, ``letsencrypt-staging`` or a URL given as is."""
    value = name_or_url.strip()
    if value in DIRECTORY_NAMES:
        return DIRECTORY_NAMES[value]
    if not value.startswith(("https://", "http://")):
        names = ", ".join(sorted(DIRECTORY_NAMES))
        raise ValueError(f"ACME directory {name_or_url!r} is neither a URL nor one of {names}")
    return value


@dataclass(frozen=True)
class AcmeSettings:
    """How to reach one ACME CA. ``directory_url`` also takes the names ``directory_url`` knows.

    ``eab_kid``/``eab_hmac_key`` (base64url) bind new accounts to an account the CA issued out
    of band (external account binding); ``ca_bundle`` is a CA file to trust for the ACME
    server's HTTPS instead of the system's. ``timeout_s`` bounds each request (rounded up to
    whole seconds), ``poll_timeout_s`` the wait for authorizations and the order.
    """

    directory_url: str
    contact_email: str | None = None
    eab_kid: str | None = None
    eab_hmac_key: str | None = None
    ca_bundle: str | None = None
    timeout_s: float = 30.0
    poll_timeout_s: float = 90.0
    nonce_retries: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory_url", directory_url(self.directory_url))
        if (self.eab_kid is None) != (self.eab_hmac_key is None):
            raise ValueError("external account binding needs both eab_kid and eab_hmac_key")
        if self.nonce_retries < 0:
            raise ValueError("nonce_retries must be 0 or more")


class AcmeError(Exception):
    """An ACME operation failed; ``str()`` is the whole story, for people.

    ``status`` says what kind of failure for code: ``unreachable`` (no connection or TLS to the
    server), ``rejected`` (the CA answered a request with a problem), ``invalid`` (an
    authorization or the order became invalid: validation failed), ``timeout`` (still pending
    after ``poll_timeout_s``), ``refused`` (cannot be asked: a wildcard over http-01, a
    challenge type the CA does not offer, a missing external account binding) and ``sink``
    (publishing through the ``ChallengeSink`` failed). ``problem`` is the CA's problem type
    (``urn:ietf:params:acme:error:...``) when it sent one, ``identifier`` the name concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str,
        problem: str | None = None,
        identifier: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problem = problem
        self.identifier = identifier


class ChallengeSink(Protocol):
    """Where ``obtain`` publishes challenges; the caller makes the edge serve them.

    ``publish_http01``: serve ``key_authorization`` at
    ``http://<domain>/.well-known/acme-challenge/<token>``. ``publish_dns01``: add the TXT value
    ``value`` at ``name`` (``_acme-challenge.<domain>``, no trailing dot; a wildcard and its
    base name publish two values at the same name, both must be served). ``wait_published``
    blocks until the edge serves everything published so far (raise to give up). The
    ``unpublish_*`` calls undo one publish each and should not raise.
    """

    def publish_http01(self, domain: str, token: str, key_authorization: str) -> None: ...

    def publish_dns01(self, name: str, value: str) -> None: ...

    def wait_published(self) -> None: ...

    def unpublish_http01(self, token: str) -> None: ...

    def unpublish_dns01(self, name: str, value: str) -> None: ...


@dataclass(frozen=True)
class Issued:
    """An issued certificate: the leaf, the chain as served (leaf first) and its private key."""

    cert_pem: str
    chain_pem: str
    key_pem: str
    not_before: datetime
    not_after: datetime


# --- keys, names and CSRs (pure) ---------------------------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def new_account_key() -> str:
    """A new ACME account key: ECDSA P-256 (the account signs with ES256), PKCS#8 PEM."""
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def new_certificate_key(key_type: KeyType = "ec256") -> str:
    """A new certificate private key: ECDSA P-256 or RSA 2048, PKCS#8 PEM."""
    if key_type == "ec256":
        return _pem(ec.generate_private_key(ec.SECP256R1()))
    if key_type == "rsa2048":
        return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    raise ValueError(f"unknown key type {key_type!r} (ec256 or rsa2048)")


def account_jwk(account_key_pem: str) -> tuple[jwk.JWK, jwa.JWASignature]:
    """The account key as a JWK and the JWS algorithm it signs with (ES256 or RS256)."""
    key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return jwk.JWKEC(key=key), jwa.ES256
    if isinstance(key, rsa.RSAPrivateKey):
        return jwk.JWKRSA(key=key), jwa.RS256
    raise ValueError("the ACME account key must be ECDSA P-256 or RSA")


def normalise_names(names: list[str]) -> list[str]:
    """``names`` lower-cased, without trailing dots or repeats, in their order; not empty."""
    out: list[str] = []
    for raw in names:
        name = raw.strip().rstrip(".").lower()
        if not name:
            raise ValueError("an empty name cannot be in a certificate")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("a certificate needs at least one name")
    return out


def check_challenge(names: list[str], challenge: ChallengeType) -> None:
    """Refuse what no CA can do: wildcards need dns-01."""
    if challenge not in ("http-01", "dns-01"):
        raise AcmeError(
            f"unknown challenge type {challenge!r} (http-01 or dns-01)", status="refused"
        )
    wildcards = [n for n in names if n.startswith("*.")]
    if challenge == "http-01" and wildcards:
        raise AcmeError(
            f"{', '.join(wildcards)}: a wildcard name can only be validated with dns-01,"
            " not http-01",
            status="refused",
            identifier=wildcards[0],
        )


def make_csr(key_pem: str, names: list[str]) -> bytes:
    """A PEM CSR for ``names`` (all in the SAN; the first as CN when it fits), signed by key."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("certificate keys are ECDSA or RSA")
    subject = (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        if len(names[0]) <= 64
        else x509.Name([])
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def issued_from(chain_pem: str, key_pem: str) -> Issued:
    """The ``Issued`` for a served chain (leaf first) whose leaf must carry ``key_pem``'s key."""
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    leaf = certs[0]
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(
        serialization.Encoding.PEM, spki
    ) != key.public_key().public_bytes(serialization.Encoding.PEM, spki):
        raise AcmeError("the CA issued a certificate for another key", status="rejected")
    return Issued(
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem=chain_pem if chain_pem.endswith("\n") else chain_pem + "\n",
        key_pem=key_pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def retry_after_s(header: str | None, default: float, now: datetime | None = None) -> float:
    """Seconds to wait per a ``Retry-After`` header (seconds or an HTTP date), else default."""
    if header is None or not header.strip():
        return default
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def problem_text(error: messages.Error) -> str:
    """``type: detail`` of a problem document, with its subproblems per identifier."""
    text = str(error.typ)
    if error.detail:
        text += f": {error.detail}"
    for sub in error.subproblems or ():
        who = f"{sub.identifier.value}: " if sub.identifier is not None else ""
        text += f"; {who}{sub.typ}" + (f": {sub.detail}" if sub.detail else "")
    return text


def _connection_reason(exc: BaseException) -> str:
    """The short reason inside a requests connection error ("[Errno 111] Connection refused")."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0).strip()
    if isinstance(exc, requests.exceptions.SSLError):
        found = re.search(r"certificate verify failed[^(']*", text)
        return "TLS: " + (found.group(0).strip() if found else text)
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    return text


# --- the network ----------------------------------------------------------------------------


class _Network(client.ClientNetwork):
    """``ClientNetwork`` that retries ``badNonce`` up to ``retries`` times on every POST."""

    def __init__(self, key: jwk.JWK, alg: jwa.JWASignature, settings: AcmeSettings) -> None:
        super().__init__(key, alg=alg, user_agent=USER_AGENT, timeout=math.ceil(settings.timeout_s))
        if settings.ca_bundle is not None:
            # requests takes a CA file where acme's hint says bool.
            self.verify_ssl = settings.ca_bundle  # type: ignore[assignment]
        self.retries = settings.nonce_retries
        self.bad_nonces = 0

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        attempt = 0
        while True:
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt >= self.retries:
                    raise
                attempt += 1
                self.bad_nonces += 1
                log.debug("badNonce, retry %d of %d", attempt, self.retries)


@contextlib.contextmanager
def _translated(settings: AcmeSettings, what: str, identifier: str | None = None) -> Iterator[None]:
    """Turn the library's and requests' exceptions inside into ``AcmeError`` about ``what``."""
    try:
        yield
    except AcmeError:
        raise
    except requests.exceptions.RequestException as exc:
        raise AcmeError(
            f"the ACME server at {settings.directory_url} is unreachable: "
            f"{_connection_reason(exc)}",
            status="unreachable",
            identifier=identifier,
        ) from exc
    except messages.Error as exc:
        raise AcmeError(
            f"{what} failed: {problem_text(exc)}",
            status="rejected",
            problem=str(exc.typ),
            identifier=identifier,
        ) from exc
    except (errors.Error, jose_errors.DeserializationError, ValueError, KeyError) as exc:
        raise AcmeError(
            f"{what} failed: {type(exc).__name__}: {exc}", status="rejected", identifier=identifier
        ) from exc


def _client(
    settings: AcmeSettings, account_key_pem: str, account_url: str | None = None
) -> client.ClientV2:
    key, alg = account_jwk(account_key_pem)
    net = _Network(key, alg, settings)
    with _translated(settings, f"reading the ACME directory {settings.directory_url}"):
        directory = client.ClientV2.get_directory(settings.directory_url, net)
    if account_url is not None:
        net.account = messages.RegistrationResource(body=messages.Registration(), uri=account_url)
    return client.ClientV2(directory, net)


def _post_as_get(acme: client.ClientV2, url: str) -> requests.Response:
    return acme.net.post(url, None, new_nonce_url=acme.directory["newNonce"])


# --- accounts -------------------------------------------------------------------------------


def register(settings: AcmeSettings, account_key_pem: str) -> str:
    """The URL of the account for ``account_key_pem``, registered now unless it already is.

    Agrees to the CA's terms of service, sets ``contact_email`` and binds the external account
    when ``eab_kid``/``eab_hmac_key`` are given.
    """
    acme = _client(settings, account_key_pem)
    assert acme.net.key is not None
    binding: dict[str, Any] | None = None
    if settings.eab_kid is not None and settings.eab_hmac_key is not None:
        with _translated(settings, "external account binding"):
            binding = messages.ExternalAccountBinding.from_data(
                account_public_key=acme.net.key.public_key(),
                kid=settings.eab_kid,
                hmac_key=settings.eab_hmac_key,
                directory=acme.directory,
            )
    elif acme.external_account_required():
        raise AcmeError(
            f"the ACME server at {settings.directory_url} requires external account binding:"
            " set eab_kid and eab_hmac_key",
            status="refused",
        )
    registration = messages.NewRegistration.from_data(
        email=settings.contact_email,
        terms_of_service_agreed=True,
        external_account_binding=binding,
    )
    with _translated(settings, f"account registration at {settings.directory_url}"):
        try:
            return str(acme.new_account(registration).uri)
        except errors.ConflictError as existing:
            return existing.location


# --- orders ---------------------------------------------------------------------------------


@dataclass
class _Published:
    kind: ChallengeType
    key: str  # the token (http-01) or the TXT name (dns-01)
    value: str


def _authz_name(authz: messages.AuthorizationResource) -> str:
    value = str(authz.body.identifier.value)
    return f"*.{value}" if authz.body.wildcard else value


def _pick(authz: messages.AuthorizationResource, kind: ChallengeType) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if challb.chall.typ == kind:
            return challb
    offered = ", ".join(str(c.chall.typ) for c in authz.body.challenges) or "none"
    name = _authz_name(authz)
    raise AcmeError(
        f"authorization for {name}: the CA offers no {kind} challenge (offered: {offered})",
        status="refused",
        identifier=name,
    )


def _authz_failure(authz: messages.AuthorizationResource) -> AcmeError:
    name = _authz_name(authz)
    for challb in authz.body.challenges:
        if challb.error is not None:
            return AcmeError(
                f"authorization for {name} failed: {problem_text(challb.error)}",
                status="invalid",
                problem=str(challb.error.typ),
                identifier=name,
            )
    return AcmeError(
        f"authorization for {name} is {authz.body.status} (the CA gave no reason)",
        status="invalid",
        identifier=name,
    )


class _Poller:
    """Waits between polls: the CA's Retry-After when sent, else a growing short delay."""

    def __init__(self, deadline: float, what: str, identifier: str | None) -> None:
        self.deadline = deadline
        self.what = what
        self.identifier = identifier
        self.delay = POLL_FIRST

    def wait(self, response: requests.Response | None) -> None:
        header = response.headers.get("Retry-After") if response is not None else None
        pause = retry_after_s(header, self.delay)
        self.delay = min(self.delay * POLL_GROWTH, POLL_MAX)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AcmeError(
                f"{self.what} still pending after the poll timeout",
                status="timeout",
                identifier=self.identifier,
            )
        time.sleep(min(pause, left))


def _poll_authorizations(
    settings: AcmeSettings,
    acme: client.ClientV2,
    authzs: list[messages.AuthorizationResource],
    deadline: float,
    say: Callable[[str], None],
) -> None:
    waiting = list(authzs)
    poller = _Poller(deadline, "authorization for " + ", ".join(map(_authz_name, authzs)), None)
    while waiting:
        still: list[messages.AuthorizationResource] = []
        last: requests.Response | None = None
        for authz in waiting:
            name = _authz_name(authz)
            with _translated(settings, f"authorization for {name}", name):
                updated, last = acme.poll(authz)
            status = updated.body.status
            if status == messages.STATUS_VALID:
                say(f"authorization {name}: valid")
            elif status in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                still.append(updated)
            else:
                raise _authz_failure(updated)
        waiting = still
        if waiting:
            poller.what = "authorization for " + ", ".join(map(_authz_name, waiting))
            poller.wait(last)


def _order_failure(label: str, body: messages.Order) -> AcmeError:
    if body.error is not None:
        return AcmeError(
            f"order for {label} failed: {problem_text(body.error)}",
            status="invalid",
            problem=str(body.error.typ),
            identifier=label,
        )
    return AcmeError(
        f"order for {label} is {body.status} (the CA gave no reason)",
        status="invalid",
        identifier=label,
    )


def _finalize(
    settings: AcmeSettings,
    acme: client.ClientV2,
    order: messages.OrderResource,
    label: str,
    deadline: float,
) -> messages.Order:
    """Send the CSR and poll the order until it is valid; the order's final body."""
    what = f"order for {label}"
    body: messages.Order | None = None
    response: requests.Response | None = None
    with _translated(settings, what, label):
        try:
            body = acme.begin_finalization(order).body
        except messages.Error as error:
            if error.code != "orderNotReady":
                raise
    poller = _Poller(deadline, what, label)
    while True:
        if body is not None:
            if body.status == messages.STATUS_VALID and body.certificate:
                return body
            if body.status == messages.STATUS_INVALID:
                raise _order_failure(label, body)
            if body.status == messages.STATUS_READY:  # finalization asked before it was ready
                poller.wait(response)
                with _translated(settings, what, label):
                    body = acme.begin_finalization(order).body
                continue
            poller.wait(response)
        with _translated(settings, what, label):
            response = _post_as_get(acme, order.uri)
            body = messages.Order.from_json(response.json())


def _cleanup(sink: ChallengeSink, published: list[_Published], say: Callable[[str], None]) -> None:
    for item in reversed(published):
        try:
            if item.kind == "http-01":
                sink.unpublish_http01(item.key)
            else:
                sink.unpublish_dns01(item.key, item.value)
        except Exception as exc:  # cleanup must reach every item and not hide the outcome
            log.warning("unpublishing %s %s failed: %s", item.kind, item.key, exc)
            say(f"cleanup of {item.kind} {item.key} failed: {exc}")


_P = ParamSpec("_P")


def _timed(fn: Callable[_P, Issued]) -> Callable[_P, Issued]:
    """Observe each order's duration and outcome (``edgeplane_acme_order_duration_seconds``)."""

    @functools.wraps(fn)
    def timed(*args: _P.args, **kwargs: _P.kwargs) -> Issued:
        start, outcome = time.monotonic(), "failed"
        try:
            issued = fn(*args, **kwargs)
            outcome = "valid"
            return issued
        finally:
            metrics.acme_order_duration.labels(outcome).observe(time.monotonic() - start)

    return timed


@_timed
def obtain(
    settings: AcmeSettings,
    account_key_pem: str,
    account_url: str,
    names: list[str],
    challenge: ChallengeType,
    sink: ChallengeSink,
    *,
    key_type: KeyType = "ec256",
    key_pem: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Issued:
    """A certificate for ``names`` from the CA, each name proven through ``sink``.

    Makes a new private key (``key_type``; or takes ``key_pem``, a renewal's) and a CSR for
    all names, orders, publishes every
    pending authorization's ``challenge`` through ``sink``, waits for ``sink.wait_published``,
    answers, polls until all are valid, finalizes and downloads the chain. Wildcards need
    dns-01. What was published is unpublished before returning or raising.
    """
    try:
        names = normalise_names(names)
    except ValueError as exc:
        raise AcmeError(str(exc), status="refused") from exc
    check_challenge(names, challenge)
    say = progress or (lambda _message: None)
    label = ", ".join(names)
    key_pem = key_pem or new_certificate_key(key_type)
    csr_pem = make_csr(key_pem, names)
    acme = _client(settings, account_key_pem, account_url)
    account_key = acme.net.key
    assert account_key is not None
    published: list[_Published] = []
    try:
        with _translated(settings, f"order for {label}", label):
            order = acme.new_order(csr_pem)
        say("order created")
        pending: list[messages.AuthorizationResource] = []
        answers: list[tuple[messages.ChallengeBody, challenges.ChallengeResponse, str]] = []
        for authz in order.authorizations:
            name = _authz_name(authz)
            if authz.body.status == messages.STATUS_VALID:
                say(f"authorization {name}: already valid")
                continue
            if authz.body.status != messages.STATUS_PENDING:
                raise _authz_failure(authz)
            challb = _pick(authz, challenge)
            domain = str(authz.body.identifier.value)
            try:
                if isinstance(challb.chall, challenges.HTTP01):
                    response, validation = challb.chall.response_and_validation(account_key)
                    token = challb.chall.encode("token")
                    published.append(_Published("http-01", token, validation))
                    sink.publish_http01(domain, token, validation)
                elif isinstance(challb.chall, challenges.DNS01):
                    response, validation = challb.chall.response_and_validation(account_key)
                    txt_name = challb.chall.validation_domain_name(domain)
                    published.append(_Published("dns-01", txt_name, validation))
                    sink.publish_dns01(txt_name, validation)
                else:  # pragma: no cover - _pick only returns the two types above
                    raise AcmeError(f"unsupported challenge {challb.chall.typ}", status="refused")
            except AcmeError:
                raise
            except Exception as exc:
                raise AcmeError(
                    f"publishing the {challenge} challenge for {name} failed: {exc}",
                    status="sink",
                    identifier=name,
                ) from exc
            say(f"authorization {name}: {challenge} published")
            pending.append(authz)
            answers.append((challb, response, name))
        if answers:
            try:
                sink.wait_published()
            except Exception as exc:
                raise AcmeError(
                    f"the edge did not serve the {challenge} challenges for {label}: {exc}",
                    status="sink",
                    identifier=label,
                ) from exc
        for challb, response, name in answers:
            with _translated(settings, f"authorization for {name}", name):
                acme.answer_challenge(challb, response)
        deadline = time.monotonic() + settings.poll_timeout_s
        _poll_authorizations(settings, acme, pending, deadline, say)
        body = _finalize(settings, acme, order, label, deadline)
        say("finalized")
        assert body.certificate is not None
        with _translated(settings, f"downloading the certificate for {label}", label):
            chain_pem = _post_as_get(acme, body.certificate).text
        say("certificate downloaded")
    finally:
        _cleanup(sink, published, say)
    with _translated(settings, f"reading the certificate for {label}", label):
        return issued_from(chain_pem, key_pem)


def renewal_time(
    settings: AcmeSettings, account_key_pem: str, account_url: str, cert_pem: str
) -> datetime | None:
    """When the CA suggests renewing ``cert_pem`` (ACME Renewal Information, RFC 9773); None
    when the CA offers none (no ``renewalInfo`` in its directory) or it could not be read."""
    acme = _client(settings, account_key_pem, account_url)
    try:
        with _translated(settings, "reading renewal information"):
            suggested, _next_check = acme.renewal_time(cert_pem.encode())
    except (AcmeError, errors.ARIError):
        return None
    if suggested is None:
        return None
    return suggested if suggested.tzinfo else suggested.replace(tzinfo=UTC)
