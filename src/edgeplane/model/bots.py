"""Bot protection per project: what the edge does with known-bad and automated clients.

Stored inside the project's CDN config (``EdgeSecurity.bots``). Clients fall into classes:

- ``bad``: a known scanner or attack tool by its user agent (the OWASP Core Rule Set's
  ``scanners-user-agents.data``, shipped with Edgeplane: ``node/nginx/bot_data``);
- ``impostor``: a user agent that claims one of the project's good bots from an address outside
  that bot's ranges (a forged "Googlebot"); treated as ``bad``;
- ``automated``: an HTTP library or script (the CRS's ``scripting-user-agents.data``) or no user
  agent at all;
- ``behaviour``: a client address flagged by the node's agent for how it behaves over a window
  (request rate, spread of distinct paths, error ratio);
- ``good``: one of the project's good bots, from one of its ranges: always served.

Each class has an action: ``off`` (ignored), ``detect`` (served and counted), ``challenge`` (a
cookie or JavaScript challenge first; a client that completes it is served for ``cookie_ttl_s``)
or ``block`` (403).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from edgeplane.model.common import Float, Input, Int, Output, Text

BotAction = Literal["off", "detect", "challenge", "block"]
ChallengeKind = Literal["cookie", "javascript"]
BOT_CLASSES = ("bad", "impostor", "automated", "behaviour", "good")
BOT_ACTIONS = ("detect", "challenge", "pass", "block")  # as counted ("pass": challenge passed)

# A good bot's user agent: a case-insensitive substring of letters, digits and a few marks.
USER_AGENT_PATTERN = r"^[A-Za-z0-9 ._/:;()+-]{2,64}$"
_USER_AGENT = re.compile(USER_AGENT_PATTERN)
BOT_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_BOT_NAME = re.compile(BOT_NAME_PATTERN)


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR block") from None


def _name(value: str) -> str:
    if not _BOT_NAME.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def _user_agent(value: str) -> str:
    if not _USER_AGENT.fullmatch(value):
        raise ValueError(
            "must be 2-64 characters: letters, digits, space and . _ / : ; ( ) + -"
            " (matched as a case-insensitive substring of the User-Agent)"
        )
    return value


class GoodBot(Input):
    """A bot the operator wants served: its user agent, only from its address ranges."""

    name: Annotated[
        Text, AfterValidator(_name), Field(json_schema_extra={"pattern": BOT_NAME_PATTERN})
    ] = Field(description="a name for listings")
    user_agent: Annotated[
        Text,
        AfterValidator(_user_agent),
        Field(json_schema_extra={"pattern": USER_AGENT_PATTERN}),
    ] = Field(description="a case-insensitive substring of its User-Agent, e.g. Googlebot")
    addresses: list[Annotated[str, AfterValidator(_cidr)]] = Field(
        min_length=1,
        max_length=200,
        description="the ranges it comes from (CIDRs); the same user agent elsewhere is an "
        "impostor",
    )


class BotBehaviour(Input):
    """Thresholds over a window of each client address's requests to the project, as the
    node's access log shows them; an address over any of them is flagged for ``flag_s``."""

    action: BotAction = Field("off", description="what a flagged address gets")
    window_s: Int = Field(60, ge=5, le=3600, description="the window the counts cover")
    max_requests: Int = Field(1200, ge=10, le=10_000_000, description="requests per window")
    max_paths: Int = Field(
        200, ge=5, le=100_000, description="distinct paths per window (spread of a crawl/scan)"
    )
    max_error_ratio: Float = Field(
        0.8, gt=0, le=1, description="share of 4xx/5xx answers, once min_requests are seen"
    )
    min_requests: Int = Field(20, ge=1, le=100_000)
    flag_s: Int = Field(600, ge=10, le=86_400, description="how long an address stays flagged")


class BotSettings(Input):
    """``EdgeSecurity.bots``: every action ``off`` (the default) costs the edge nothing."""

    mode: BotAction = Field("off", description="for known-bad user agents and impostors")
    automated: BotAction = Field(
        "off", description="for HTTP libraries and scripts, and requests with no user agent"
    )
    behaviour: BotBehaviour = Field(default_factory=BotBehaviour)
    challenge: ChallengeKind = Field(
        "javascript",
        description="cookie: a redirect that sets a signed cookie; javascript: a page whose "
        "script solves a small proof of work and sets it",
    )
    difficulty: Int = Field(
        12, ge=0, le=24, description="leading zero bits of the JavaScript proof of work"
    )
    cookie_ttl_s: Int = Field(3600, ge=60, le=7 * 86_400, description="a passed challenge lasts")
    good_bots: list[GoodBot] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _unique(self) -> BotSettings:
        names = [b.name for b in self.good_bots]
        if len(names) != len(set(names)):
            raise ValueError("good_bots: names must be unique")
        return self

    @property
    def enabled(self) -> bool:
        """True when the edge has anything to do for the project."""
        return (
            self.mode != "off"
            or self.automated != "off"
            or self.behaviour.action != "off"
            or bool(self.good_bots)
        )


class BotCount(Output):
    bot_class: Literal["bad", "impostor", "automated", "behaviour", "good"]
    action: Literal["detect", "challenge", "pass", "block"]
    requests: int


class BotSummary(Output):
    """``GET /api/v1/infrastructure/cdn/bots``: the project's settings and what the edge saw."""

    project: str
    enabled: bool
    settings: BotSettings
    start: datetime
    end: datetime
    requests: int  # every request of the project in the window
    bot_requests: int  # those of a bot class
    challenged: int
    blocked: int
    counts: list[BotCount]  # by class and action, largest first


__all__ = [
    "BOT_ACTIONS",
    "BOT_CLASSES",
    "BotAction",
    "BotBehaviour",
    "BotCount",
    "BotSettings",
    "BotSummary",
    "ChallengeKind",
    "GoodBot",
]
