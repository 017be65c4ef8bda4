"""The HTTP check: every address of the domain serves the token at a well-known path.

The domain's addresses come from its delegated name servers (``Resolver.addresses``); each is
asked directly with ``Host: <domain>`` (and the domain as TLS server name over https), so a
proxy, a local hosts file or a CDN in front of only some addresses cannot answer for it.
Redirects are followed only while they stay on the domain, at the same address.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from edgeplane.verification.resolve import ResolutionError, Resolver, normalize
from edgeplane.verification.result import CheckResult

WELL_KNOWN_PATH = "/.well-known/edgeplane-verification/"
MAX_BODY = 4096
"""Bytes of the response read at most; a larger body fails the check."""
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN_CHARS = 80
_ERRNO = re.compile(r"^\[Errno -?\d+\] ")


class _TooLarge(Exception):
    pass


def token_path(token: str) -> str:
    """The path the file is served at: ``/.well-known/edgeplane-verification/<token>``."""
    return WELL_KNOWN_PATH + quote(token, safe="")


def _authority(host: str, scheme: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def verification_url(domain: str, token: str, *, scheme: str = "http", port: int = 80) -> str:
    """The URL a user publishes the file at (for instructions)."""
    return f"{scheme}://{_authority(normalize(domain), scheme, port)}{token_path(token)}"


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "an empty body"
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def _get(
    client: httpx.Client, url: str, domain: str, scheme: str, port: int
) -> tuple[int, bytes, str | None]:
    """Status, body (at most ``MAX_BODY`` bytes) and Location of one GET."""
    headers = {"Host": _authority(domain, scheme, port), "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": domain} if scheme == "https" else {}
    with client.stream("GET", url, headers=headers, extensions=extensions) as response:
        body = b""
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > MAX_BODY:
                raise _TooLarge
        return response.status_code, body, response.headers.get("location")


def _check_address(
    client: httpx.Client,
    domain: str,
    address: str,
    token: str,
    scheme: str,
    port: int,
    timeout_s: float,
    checked: list[str],
) -> str | None:
    """Why ``address`` does not serve the token, or None when it does."""
    path = token_path(token)
    for _hop in range(MAX_REDIRECTS + 1):
        shown = f"{scheme}://{_authority(domain, scheme, port)}{path} at {address}"
        checked.append(shown)
        url = f"{scheme}://{_authority(address, scheme, port)}{path}"
        try:
            status, body, location = _get(client, url, domain, scheme, port)
        except _TooLarge:
            return f"{shown} answered with more than {MAX_BODY} bytes; serve only the token"
        except httpx.TimeoutException:
            return f"{shown} did not answer within {timeout_s:g} s"
        except httpx.HTTPError as e:
            detail = _ERRNO.sub("", str(e)) or type(e).__name__
            return f"{shown} could not be fetched: {detail[:1].lower()}{detail[1:]}"
        if status in _REDIRECTS and location:
            base = httpx.URL(f"{scheme}://{_authority(domain, scheme, port)}{path}")
            try:
                target = base.join(location)
            except httpx.InvalidURL:
                return f"{shown} redirects to an invalid location {location!r}"
            if target.scheme not in _DEFAULT_PORTS or target.host.lower() != domain:
                return (
                    f"{shown} redirects to {location!r}, away from {domain}; "
                    "serve the file on the domain itself"
                )
            scheme = target.scheme
            port = target.port or _DEFAULT_PORTS[scheme]
            path = target.raw_path.decode("ascii")
            continue
        if status != 200:
            return f"{shown} answered {status} with {_snippet(body)}"
        if body.decode("utf-8", "replace").strip() != token:
            return f"{shown} answered 200 with {_snippet(body)} instead of the token"
        return None
    return f"{shown} redirected more than {MAX_REDIRECTS} times"


def check_http_file(
    domain: str,
    token: str,
    resolver: Resolver,
    *,
    port: int = 80,
    scheme: str = "http",
    timeout_s: float = 5.0,
) -> CheckResult:
    """OK when every A/AAAA address of ``domain`` answers ``GET <scheme>://<address>:<port>
    /.well-known/edgeplane-verification/<token>`` (``Host: <domain>``) with 200 and a body
    that is the token (surrounding whitespace ignored)."""
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"scheme must be http or https, not {scheme!r}")
    try:
        name = normalize(domain)
        found = resolver.addresses(name)
    except ResolutionError as e:
        return CheckResult(False, str(e))
    checked: list[str] = []
    problems: list[str] = []
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout_s) as client:
        for address in found:
            problem = _check_address(client, name, address, token, scheme, port, timeout_s, checked)
            if problem is not None:
                problems.append(problem)
    if problems:
        head = ""
        if len(found) > 1:
            head = f"{len(problems)} of {len(found)} addresses do not serve the token: "
        return CheckResult(False, head + "; ".join(problems), tuple(checked))
    url = verification_url(name, token, scheme=scheme, port=port)
    return CheckResult(
        True, f"{url} serves the token at every address ({', '.join(found)})", tuple(checked)
    )
