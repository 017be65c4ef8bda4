"""An edge node's exposed surface: which TCP ports answer on its address, against what it
should expose.

A node should answer on its HTTP, HTTPS and DNS ports and nothing else. Its own services
(the agent's metrics, its DNS server's API, backend and console) belong on loopback: found
open on a node address that is not loopback they are ``exposed``; on a loopback address
(a node of ``edgeplane up``) they are ``internal`` and fine. Any other open port is
``unexpected``. An expected port that does not answer is ``missing`` (the node is not
serving, which its health says louder: no alert here).

``ports_to_scan`` is the port list (the well-known range plus the node's own ports);
``classify`` is pure; the scan itself is ``edgeplane.posture.portscan``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from edgeplane.model.security_score import PortFinding

WELL_KNOWN = range(1, 1024)
PUBLIC_ROLES = ("http", "https", "dns")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def ports_to_scan(
    expected: Mapping[str, int], internal: Mapping[str, int], extra: Iterable[int] = ()
) -> list[int]:
    """The well-known range, the node's own ports and any extra ones, sorted."""
    ports = set(WELL_KNOWN) | set(expected.values()) | set(internal.values()) | set(extra)
    return sorted(p for p in ports if 1 <= p <= 65535)


def classify(
    address: str,
    open_ports: Iterable[int],
    expected: Mapping[str, int],
    internal: Mapping[str, int],
) -> list[PortFinding]:
    """The findings of one scan: every expected port (open or missing), every open port that
    is not expected, by port."""
    found = set(open_ports)
    loopback = is_loopback(address)
    roles: dict[int, str] = {}
    for role, port in internal.items():
        roles.setdefault(port, role)
    for role, port in expected.items():
        roles[port] = role  # a public role wins (dns_backend == dns_port without dnsdist)
    findings: list[PortFinding] = []
    public = {port for role, port in expected.items()}
    for port in sorted(public | found):
        role = roles.get(port, "unknown")
        if port in public:
            is_open = port in found
            findings.append(
                PortFinding(
                    port=port,
                    open=is_open,
                    role=role,
                    verdict="expected" if is_open else "missing",
                    severity="ok" if is_open else "info",
                    detail=f"{role} answers" if is_open else f"{role} does not answer",
                )
            )
        elif role != "unknown":
            findings.append(
                PortFinding(
                    port=port,
                    open=True,
                    role=role,
                    verdict="internal" if loopback else "exposed",
                    severity="ok" if loopback else "critical",
                    detail=(
                        f"the node's {role} port, on loopback"
                        if loopback
                        else f"the node's {role} port answers on {address}: bind it to "
                        "127.0.0.1 or firewall it"
                    ),
                )
            )
        else:
            findings.append(
                PortFinding(
                    port=port,
                    open=True,
                    role="unknown",
                    verdict="unexpected",
                    severity="warning",
                    detail=f"something the node should not expose answers on {address}:{port}",
                )
            )
    return findings


def unexpected(findings: Iterable[PortFinding]) -> int:
    return sum(1 for f in findings if f.verdict in ("exposed", "unexpected"))
