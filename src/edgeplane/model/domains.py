"""Domains: names a project's application is served at."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import idna
from pydantic import AfterValidator, Field

from edgeplane.model.certificates import Certificate
from edgeplane.model.common import Input, Output
from edgeplane.model.enums import Environment

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_domain(value: str) -> str:
    """The domain in canonical form (IDNA A-labels, lower case, no trailing dot)."""
    text = value.strip().rstrip(".").lower()
    if not text:
        raise ValueError("must not be empty")
    if "*" in text:
        raise ValueError("wildcard names are not supported; add each name")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"is not a valid domain name ({exc})") from None
    if len(ascii_name) > 253:
        raise ValueError("is longer than 253 characters")
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("needs at least two labels, e.g. example.com or app.localhost")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(
                f"label {label!r} must be 1-63 letters, digits or '-', not starting or "
                "ending with '-'"
            )
    if labels[-1].isdigit():
        raise ValueError("is an IP address, not a domain name")
    return ascii_name


DomainName = Annotated[
    str,
    AfterValidator(normalise_domain),
    Field(description="a domain name, e.g. www.example.com or app.localhost", max_length=300),
]


class DomainCreate(Input):
    domain: DomainName
    auto_configure: bool = Field(True, description="configure DNS records automatically")
    environment: Environment | None = None


class Domain(Output):
    domain: str
    project: str
    environment: Environment
    status: str  # active (served by the edge) / pending (awaiting verification)
    verified_at: datetime | None
    auto_configure: bool
    certificate: Certificate | None  # the newest valid certificate
    created_at: datetime
    updated_at: datetime


class DomainAdded(Output):
    """The answer to ``POST /api/v1/infrastructure/domains``."""

    domain_config: Domain
    verification_required: bool


class DomainList(Output):
    domains: list[Domain]
    next_cursor: str | None = None
