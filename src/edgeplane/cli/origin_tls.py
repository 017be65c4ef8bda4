"""The options of private origins (``edgeplane.model.origin_tls``), shared by ``edgeplane lb
create / update`` and ``edgeplane cdn configure``: what the edge presents to the origin and
how it verifies the origin's certificate.

    --client-cert                the project's client certificate (edgeplane ca origin-client)
    --verify none|ca|pin         how the origin's certificate is checked
    --origin-ca FILE             the CA (PEM) the origin's chain must lead to (verify ca)
    --pin sha256/...             a pinned public key (verify pin); repeatable
    --origin-name NAME           the name sent in SNI and checked (default: the request's host)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeplane.cli import runtime as rt

ClientCert = Annotated[
    bool | None,
    typer.Option(
        "--client-cert/--no-client-cert",
        help="present the project's client certificate (internal CA) to https origins",
    ),
]
Verify = Annotated[
    str | None,
    typer.Option("--verify", help="check the origin: none, ca (--origin-ca) or pin (--pin)"),
]
OriginCa = Annotated[
    Path | None,
    typer.Option("--origin-ca", help="PEM file of the CA the origin's certificate chains to"),
]
Pins = Annotated[
    list[str] | None,
    typer.Option("--pin", help="pinned key sha256/<base64 SPKI SHA-256>; repeatable"),
]
OriginName = Annotated[
    str | None,
    typer.Option("--origin-name", help="the name sent in SNI and checked in the certificate"),
]


def tls_doc(
    client_cert: bool | None,
    verify: str | None,
    origin_ca: Path | None,
    pins: list[str] | None,
    origin_name: str | None,
) -> dict[str, Any] | None:
    """The ``tls`` object of the options given (None: none given)."""
    ca_pem = None
    if origin_ca is not None:
        try:
            ca_pem = origin_ca.read_text()
        except OSError as exc:
            rt.fail(f"cannot read {origin_ca}: {exc.strerror or exc}", 2)
    doc = rt.compact(
        client_certificate=client_cert,
        verify=verify,
        ca_pem=ca_pem,
        pins=pins or None,
        server_name=origin_name,
    )
    return doc or None
