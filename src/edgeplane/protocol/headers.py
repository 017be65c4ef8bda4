"""A site's security headers policy as the edge renders it (``SiteSpec.headers``; None: the
defaults of ``edgeplane.model.headers_policy``, which render as before the policy existed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class HeaderRuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # the header's name, as sent (X-Frame-Options)
    action: Literal["set", "keep", "remove"]
    value: str = ""  # ours: set's value, or keep's when the origin sends none ("": none)


class HeadersSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[HeaderRuleSpec, ...]  # one per policy header, in the policy's order
    remove_leaking: bool = True
