"""A project's security headers policy: what the edge does with each security header of a
response (``EdgeSecurity.headers`` of the CDN config), and the leaking headers it removes.

Each of ``X-Frame-Options``, ``X-Content-Type-Options``, ``Referrer-Policy``,
``Permissions-Policy`` and ``Content-Security-Policy`` has one action:

- ``set``: the edge sends ``value``, replacing whatever the origin sent;
- ``keep``: the origin's value when it sends one, else ``value`` (nothing when ``value`` is
  empty): an origin's own policy is never weakened;
- ``remove``: the edge sends none, whatever the origin sent.

A header is never sent twice, cached responses included. The defaults keep what the edge sent
before the policy existed for an origin that sends none (``X-Frame-Options: SAMEORIGIN``,
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: strict-origin-when-cross-origin``) and
leave ``Permissions-Policy`` and ``Content-Security-Policy`` to the origin.
``Strict-Transport-Security`` stays its own setting (``hsts_max_age``).

``remove_leaking`` (on by default) removes ``X-Powered-By``, ``X-AspNet-Version`` and
``X-AspNetMvc-Version``; the origin's ``Server`` never reaches clients (the edge sends its own,
``nginx`` without a version).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from edgeplane.model.common import Bool, Input, Text
from edgeplane.protocol.headers import DEFAULT_RULES, HEADERS, LEAKING

VALUE_MAX = 4096
# Printable ASCII but the characters nginx's quoted strings cannot hold as they are.
_VALUE = re.compile(r"^[\x20-\x7e]*$")
_UNSAFE = re.compile(r'["$\\]')
_REFERRER = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)


def check_value(header: str, value: str) -> str:
    """``value`` as the edge may send it for ``header``; ValueError saying why not."""
    if not _VALUE.match(value) or _UNSAFE.search(value):
        raise ValueError('printable ASCII without ", $ or backslash')
    if len(value) > VALUE_MAX:
        raise ValueError(f"at most {VALUE_MAX} characters")
    if value != value.strip():
        raise ValueError("no leading or trailing spaces")
    if header == "X-Frame-Options" and value.upper() not in ("DENY", "SAMEORIGIN"):
        raise ValueError("DENY or SAMEORIGIN")
    if header == "X-Content-Type-Options" and value.lower() != "nosniff":
        raise ValueError("nosniff")
    if header == "Referrer-Policy":
        tokens = [t.strip().lower() for t in value.split(",")]
        if not all(t in _REFERRER for t in tokens):
            raise ValueError(f"a comma-separated list of {', '.join(sorted(_REFERRER))}")
    return value


class HeaderRule(Input):
    """What the edge does with one security header (see the module's docstring)."""

    action: Literal["set", "keep", "remove"] = Field(
        "keep",
        description="set: ours replaces the origin's; keep: the origin's, else ours; remove: none",
    )
    value: Text | None = Field(
        None, description="ours (set: required; keep: sent when the origin sends none)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> HeaderRule:
        if self.action == "set" and not self.value:
            raise ValueError("set needs a value")
        if self.action == "remove" and self.value:
            raise ValueError("remove takes no value")
        return self


def _rule(action: Literal["set", "keep", "remove"], value: str | None = None) -> HeaderRule:
    return HeaderRule(action=action, value=value)


DEFAULTS = {field: _rule(action, value) for field, (action, value) in DEFAULT_RULES.items()}


class HeadersPolicy(Input):
    """The security headers of a project's responses at the edge."""

    x_frame_options: HeaderRule = Field(
        default_factory=lambda: DEFAULTS["x_frame_options"].model_copy()
    )
    x_content_type_options: HeaderRule = Field(
        default_factory=lambda: DEFAULTS["x_content_type_options"].model_copy()
    )
    referrer_policy: HeaderRule = Field(
        default_factory=lambda: DEFAULTS["referrer_policy"].model_copy()
    )
    permissions_policy: HeaderRule = Field(
        default_factory=lambda: DEFAULTS["permissions_policy"].model_copy()
    )
    content_security_policy: HeaderRule = Field(
        default_factory=lambda: DEFAULTS["content_security_policy"].model_copy()
    )
    remove_leaking: Bool = Field(
        True, description="remove X-Powered-By, X-AspNet-Version and X-AspNetMvc-Version"
    )

    @model_validator(mode="after")
    def _values(self) -> HeadersPolicy:
        for field, header in HEADERS.items():
            rule: HeaderRule = getattr(self, field)
            if rule.value:
                try:
                    check_value(header, rule.value)
                except ValueError as exc:
                    raise ValueError(f"{field}.value: {exc}") from None
        return self

    def is_default(self) -> bool:
        return self == _default()


_DEFAULT: list[HeadersPolicy] = []


def _default() -> HeadersPolicy:
    if not _DEFAULT:
        _DEFAULT.append(HeadersPolicy())
    return _DEFAULT[0]


__all__ = ["DEFAULTS", "HEADERS", "LEAKING", "HeaderRule", "HeadersPolicy", "check_value"]
