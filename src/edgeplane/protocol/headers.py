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


HEADERS = {  # the policy's field -> the header's name
    "x_frame_options": "X-Frame-Options",
    "x_content_type_options": "X-Content-Type-Options",
    "referrer_policy": "Referrer-Policy",
    "permissions_policy": "Permissions-Policy",
    "content_security_policy": "Content-Security-Policy",
}
LEAKING = ("X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version")
# field -> (action, our value or None): the default policy, as the edge rendered before it
DEFAULT_RULES: dict[str, tuple[Literal["set", "keep", "remove"], str | None]] = {
    "x_frame_options": ("keep", "SAMEORIGIN"),
    "x_content_type_options": ("keep", "nosniff"),
    "referrer_policy": ("keep", "strict-origin-when-cross-origin"),
    "permissions_policy": ("keep", None),
    "content_security_policy": ("keep", None),
}


class HeadersSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[HeaderRuleSpec, ...]  # one per policy header, in the policy's order
    remove_leaking: bool = True
