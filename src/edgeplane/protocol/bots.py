"""A site's bot protection as the edge node gets it (``SiteSpec.bots``; see ``model/bots.py``).

``key`` signs the challenge cookies of the site (hex, derived by the control plane from its
secret box: ``snapshot/bots.py``); it is the same on every node, so a client that passed a
challenge on one node is served by all of them. It never appears in a repr or a log.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["off", "detect", "challenge", "block"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoodBotSpec(_Frozen):
    name: str
    user_agent: str  # a case-insensitive substring of the User-Agent
    addresses: tuple[str, ...]  # CIDRs, normalised


class BehaviourSpec(_Frozen):
    action: Action = "off"
    window_s: int = 60
    max_requests: int = 1200
    max_paths: int = 200
    max_error_ratio: float = 0.8
    min_requests: int = 20
    flag_s: int = 600


class BotSpec(_Frozen):
    mode: Action = "off"  # known-bad user agents and impostors
    automated: Action = "off"
    behaviour: BehaviourSpec = BehaviourSpec()
    challenge: Literal["cookie", "javascript"] = "javascript"
    difficulty: int = Field(12, ge=0, le=24)
    cookie_ttl_s: int = 3600
    good_bots: tuple[GoodBotSpec, ...] = ()
    key: str = Field(repr=False)  # hex; HMAC-SHA256 key of the site's challenge cookies
