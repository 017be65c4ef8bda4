"""Where notifications go: one configuration model per channel kind.

A channel is a webhook (a signed JSON POST), an email (SMTP) or a Slack-compatible incoming
webhook (Slack, Mattermost and Rocket.Chat take the same ``{"text": ...}`` body). Secrets are
write-only: ``redacted`` gives a configuration fit for an API answer (each secret ``"set"``
or left out), ``split_secrets`` separates what the caller stores encrypted. A Slack webhook's
URL is a credential too (its path is the token): both treat it as one.

URLs may not hold a user name or password (they would be stored and shown in the clear): a
webhook authenticates with its ``secret`` or an extra header.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, field_validator

from edgeplane.model.common import CONTROLS, Input, Int, Text

SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("secret",),
    "email": ("password",),
    "slack": (),
}
"""The write-only fields of each kind: never echoed, stored encrypted."""

CREDENTIAL_URLS: dict[str, tuple[str, ...]] = {"slack": ("url",)}
"""URLs that are credentials themselves: shown as scheme://host/… only, stored encrypted."""

# Headers the sender sets itself (or that would break the request), compared lower-case.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "x-edgeplane-signature",
        "x-edgeplane-timestamp",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token characters
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# No control characters either (``Text``'s rule, which a pattern of a field's own must state).
URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@:\[\]{CONTROLS}]+(:{_PORT})?([/?#][^\s{CONTROLS}]*)?$"
)
_URL = re.compile(URL_PATTERN)


def _http_url(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain white space")
    text = value
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "none"
        raise ValueError(f"must be an http:// or https:// URL (the scheme is {shown})")
    if not parts.hostname:
        raise ValueError("must name a host (http(s)://host[:port]/path)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user name or password")
    if any(ch.isspace() for ch in text):
        raise ValueError("must not contain white space")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("has an invalid port (1-65535)") from None
    if not _URL.match(text):  # the schema's pattern: e.g. a port 0 or 080, an IPv6 address
        raise ValueError(
            "must be http(s)://host[:port][/path] (a port 1-65535, a host name or IPv4 address)"
        )
    return text


HttpUrl = Annotated[
    Text,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    Field(json_schema_extra={"pattern": URL_PATTERN}),  # for the schema; the validator says why
]


def _header_name(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{value} is set by the sender and cannot be given")
    return value


def _header_value(value: str) -> str:
    if not value.isascii():
        raise ValueError("must be ASCII")
    return value.strip()


HeaderName = Annotated[
    str,
    StringConstraints(max_length=100),
    AfterValidator(_header_name),
    Field(json_schema_extra={"pattern": _TOKEN.pattern}),  # for the schema (propertyNames)
]
HeaderValue = Annotated[
    Text,
    StringConstraints(max_length=2000),
    AfterValidator(_header_value),
    Field(json_schema_extra={"pattern": "^[ -~]*$"}),  # printable ASCII, for the schema
]


def _email_address(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    text = value
    _name, address = parseaddr(text)
    plain = address == text
    if not address or not _ADDRESS.match(address) or not (plain or text.endswith(f"<{address}>")):
        raise ValueError(f"{text!r} is not an email address like alerts@example.com")
    return text


_PLAIN = _ADDRESS.pattern.strip("^$")
EmailAddress = Annotated[
    Text,
    StringConstraints(min_length=3, max_length=320),
    AfterValidator(_email_address),
    Field(
        description="name@example.com or Name <name@example.com>",
        # what the validator takes, for the schema (its own message is the clearer one)
        json_schema_extra={"pattern": f"^(?:{_PLAIN}|[^<>{CONTROLS}]*<{_PLAIN}>)$"},
    ),
]
SmtpHost = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:-]+$"),
    Field(description="a host name or IP address", examples=["smtp.example.com"]),
]


class WebhookChannel(Input):
    """A JSON POST of each notification, signed with HMAC-SHA256 when ``secret`` is set."""

    kind: Literal["webhook"]
    url: HttpUrl = Field(description="http(s)://host[:port]/path")
    secret: Text | None = Field(
        None,
        min_length=1,
        max_length=500,
        repr=False,
        description="HMAC key of the X-Edgeplane-Signature header; write-only",
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=20,
        description="extra request headers",
    )

    @field_validator("headers")
    @classmethod
    def _distinct(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name in value:
            if name.lower() in seen:
                raise ValueError(f"{name} is given twice (header names ignore case)")
            seen.add(name.lower())
        return value


class EmailChannel(Input):
    """A mail through an SMTP server to up to 50 addresses."""

    kind: Literal["email"]
    smtp_host: SmtpHost
    smtp_port: Int = Field(25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, STARTTLS after connecting, or TLS from the start (465)"
    )
    username: Text | None = Field(None, min_length=1, max_length=200)
    password: Text | None = Field(None, max_length=500, repr=False, description="write-only")
    from_address: EmailAddress
    to: list[EmailAddress] = Field(min_length=1, max_length=50)


class SlackChannel(Input):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat); its URL is a
    credential."""

    kind: Literal["slack"]
    url: HttpUrl = Field(description="the incoming webhook's URL")


ChannelConfig = Annotated[WebhookChannel | EmailChannel | SlackChannel, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[ChannelConfig] = TypeAdapter(ChannelConfig)


def parse_channel(data: Any) -> ChannelConfig:
    """Validate a channel configuration (e.g. ``{**public, **secret}`` of ``split_secrets``)."""
    return _ADAPTER.validate_python(data)


def _url_shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def redacted(config: ChannelConfig) -> dict[str, Any]:
    """The configuration as JSON for an API answer: each secret ``"set"`` (left out when
    unset), a credential URL reduced to scheme://host/…."""
    out = config.model_dump(mode="json")
    for name in SECRET_FIELDS[config.kind]:
        if out.get(name) is None:
            out.pop(name, None)
        else:
            out[name] = "set"
    for name in CREDENTIAL_URLS.get(config.kind, ()):
        out[name] = _url_shown(out[name])
    return out


def split_secrets(config: ChannelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public part, secret part) as JSON: the secret part holds the set secrets and credential
    URLs, to be stored encrypted; ``parse_channel({**public, **secret})`` gives the config."""
    public = config.model_dump(mode="json")
    secret: dict[str, Any] = {}
    for name in (*SECRET_FIELDS[config.kind], *CREDENTIAL_URLS.get(config.kind, ())):
        value = public.pop(name)
        if value is not None:
            secret[name] = value
    return public, secret
