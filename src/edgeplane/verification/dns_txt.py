"""The DNS check: a TXT record holding the token, served by every delegated name server."""

from __future__ import annotations

from edgeplane.verification.resolve import (
    Answer,
    NameNotFound,
    ResolutionError,
    Resolver,
    normalize,
    where,
)
from edgeplane.verification.result import CheckResult

CHALLENGE_LABEL = "_edgeplane-challenge"
_SHOWN = 5  # found values quoted in a reason
_SHOWN_CHARS = 80


def challenge_name(domain: str) -> str:
    """Where the TXT record goes: ``_edgeplane-challenge.<domain>``."""
    return f"{CHALLENGE_LABEL}.{normalize(domain)}"


def txt_values(answer: Answer, name: str) -> list[str]:
    """The TXT records at ``name``, each record's strings joined into one value."""
    values = []
    for rd in answer.records(name, "TXT"):
        strings: tuple[bytes, ...] = rd.strings  # type: ignore[attr-defined]
        values.append(b"".join(strings).decode("utf-8", "replace"))
    return values


def _quoted(values: list[str]) -> str:
    shown = [repr(v if len(v) <= _SHOWN_CHARS else v[:_SHOWN_CHARS] + "...") for v in values]
    more = len(values) - _SHOWN
    return ", ".join(shown[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _problem(answer: Answer, name: str, token: str) -> str | None:
    """Why ``answer`` does not prove ownership, or None when it holds the token."""
    values = txt_values(answer, name)
    if token in values:
        return None
    where = f"TXT {name} at {answer.server}"
    if values:
        return f"{where} holds no record with the token; found: {_quoted(values)}"
    target = answer.cname(name)
    if target is not None:
        return f"{where}: the name is a CNAME to {target}; put the TXT record at {name} itself"
    return f"{where}: there is no TXT record; add one holding the token"


def check_dns_txt(domain: str, token: str, resolver: Resolver) -> CheckResult:
    """OK when every name server the domain is delegated to serves a TXT record at
    ``_edgeplane-challenge.<domain>`` whose (joined) text is exactly ``token``.

    Each server is asked at its addresses in turn until one answers; the reason names each
    server that did not have the token.
    """
    try:
        name = challenge_name(domain)
        servers = resolver.delegated_nameservers(domain)
    except ResolutionError as e:
        return CheckResult(False, str(e))
    checked: list[str] = []
    problems: list[str] = []
    for ns_name, ns_addresses in servers:
        shown = ", ".join(where(address, resolver.ns_port) for address in ns_addresses)
        checked.append(f"{ns_name} ({shown})" if shown else ns_name)
        try:
            answer = resolver.query_authoritative(name, "TXT", ns_addresses, ns_name=ns_name)
        except NameNotFound as e:
            problems.append(f"{e}; add a TXT record there holding the token")
            continue
        except ResolutionError as e:
            problems.append(str(e))
            continue
        problem = _problem(answer, name, token)
        if problem is not None:
            problems.append(problem)
    if problems:
        head = ""
        if len(servers) > 1:
            head = f"{len(problems)} of {len(servers)} name servers lack the token: "
        return CheckResult(False, head + "; ".join(problems), tuple(checked))
    names = ", ".join(ns for ns, _ in servers)
    return CheckResult(
        True, f"TXT {name} holds the token at every name server ({names})", tuple(checked)
    )
