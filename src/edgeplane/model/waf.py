"""A project's web application firewall: ModSecurity v3 with the OWASP Core Rule Set at the edge.

``WafSettings`` is ``EdgeSecurity.waf`` in the project's CDN config (``edgeplane.model.cdn``):

- ``mode``: ``off`` (no inspection: the site's requests never reach ModSecurity), ``detect``
  (every request inspected, matches logged and counted, nothing refused) or ``block`` (a request
  whose inbound anomaly score reaches the threshold is refused with a 403 that names its
  request id);
- ``paranoia_level`` 1-4: which CRS rules run (1, the default, is meant to have no false
  positives on ordinary sites; each level adds stricter rules);
- ``anomaly_threshold``: the inbound anomaly score at which a request is refused (each rule
  that matches adds 5 for critical, 4 error, 3 warning, 2 notice; the CRS's default is 5);
- ``exclusions``: rules switched off for the project, everywhere or under a path prefix
  (``ctl:ruleRemoveById`` before the CRS runs): the false-positive workflow adds them from a
  match (``edgeplane waf exclude --rule 942100 --path /api/search``).

A match as the edge logged it and the control plane keeps it is a ``WafMatch``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from edgeplane.model.common import Input, Int, ObjectId, Output, Text

WafMode = Literal["off", "detect", "block"]
# The Core Rule Set's rules have ids 900000-999999 (the only rules a project can exclude).
RULE_PATTERN = r"^9[0-9]{5}(?:-9[0-9]{5})?$"
# A path prefix as ModSecurity compares it with REQUEST_FILENAME (@beginsWith): what a URL
# path holds unencoded, without quotes, backslashes, spaces or percent signs.
PATH_PATTERN = r"^/[A-Za-z0-9._~!$&()*+,;=:@/-]{0,500}$"
NOTE_MAX = 500
MAX_EXCLUSIONS = 200
MAX_RULES_PER_EXCLUSION = 50
_RULE = re.compile(RULE_PATTERN)
_PATH = re.compile(PATH_PATTERN)


def check_rule(value: str) -> str:
    """A rule id (``942100``) or an inclusive range (``942100-942199``)."""
    text = value.strip()
    if not _RULE.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a rule of the OWASP Core Rule Set (ids 900000-999999, e.g. "
            "942100) or a range of them (942100-942199)"
        )
    if "-" in text:
        low, high = (int(p) for p in text.split("-"))
        if low > high:
            raise ValueError(f"{value!r}: the range's first id is above its last")
    return text


def check_path(value: str) -> str:
    if not _PATH.fullmatch(value):
        raise ValueError(
            "must be a path prefix starting with / (letters, digits and -._~!$&()*+,;=:@/ "
            "only: no spaces, quotes, backslashes or percent-encoding)"
        )
    return value


RuleRef = Annotated[
    Text, AfterValidator(check_rule), Field(json_schema_extra={"pattern": RULE_PATTERN})
]
PathPrefix = Annotated[
    Text, AfterValidator(check_path), Field(json_schema_extra={"pattern": PATH_PATTERN})
]


class WafExclusionCreate(Input):
    """Rules switched off for the project: everywhere, or for paths starting with ``path``."""

    id: ObjectId | None = Field(None, description="given by the control plane when absent")
    rules: list[RuleRef] = Field(
        min_length=1,
        max_length=MAX_RULES_PER_EXCLUSION,
        description="rule ids (942100) or inclusive ranges (942100-942199)",
    )
    path: PathPrefix | None = Field(None, description="only requests whose path starts with it")
    note: Text | None = Field(None, max_length=NOTE_MAX, description="why (for people)")

    @field_validator("rules")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WafExclusion(Input):
    id: ObjectId
    rules: list[RuleRef] = Field(min_length=1, max_length=MAX_RULES_PER_EXCLUSION)
    path: PathPrefix | None = None
    note: Text | None = Field(None, max_length=NOTE_MAX)


class WafSettings(Input):
    mode: WafMode = Field("off", description="off, detect (log only) or block")
    paranoia_level: Int = Field(1, ge=1, le=4, description="the CRS paranoia level, 1-4")
    anomaly_threshold: Int = Field(
        5, ge=1, le=10_000, description="inbound anomaly score at which a request is refused"
    )
    exclusions: list[WafExclusion] = Field(default_factory=list, max_length=MAX_EXCLUSIONS)

    @field_validator("exclusions")
    @classmethod
    def _unique_ids(cls, value: list[WafExclusion]) -> list[WafExclusion]:
        seen: set[str] = set()
        for i, exclusion in enumerate(value):
            if exclusion.id in seen:
                raise ValueError(f"exclusion {i}: id {exclusion.id!r} is listed twice")
            seen.add(exclusion.id)
        return value


class WafSettingsPatch(Input):
    """``PATCH /cdn/waf``: the settings to change (exclusions have their own endpoints)."""

    mode: WafMode | None = None
    paranoia_level: Int | None = Field(None, ge=1, le=4)
    anomaly_threshold: Int | None = Field(None, ge=1, le=10_000)


class WafRuleMatch(Output):
    rule: int
    message: str
    data: str | None = None  # what matched, truncated
    severity: str | None = None


class WafMatch(Output):
    """One request that matched rules at the edge."""

    id: int
    request_id: str
    at: datetime
    node: str
    domain: str
    method: str
    uri: str
    client: str
    rules: list[WafRuleMatch]
    anomaly_score: int | None
    action: Literal["blocked", "detected"]
    status: int | None


class WafMatchPage(Output):
    items: list[WafMatch]
    next_before: int | None = None  # pass as ``before`` for the next (older) page


class WafStatus(Output):
    project: str
    mode: WafMode
    paranoia_level: int
    anomaly_threshold: int
    exclusions: int
    revision: int | None
    matches_24h: int
    blocked_24h: int
    top_rules_24h: dict[str, int]  # rule id -> matches
