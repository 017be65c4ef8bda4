"""A project's WAF settings as its sites' snapshot holds them (pure)."""

from __future__ import annotations

from edgeplane.model.waf import WafSettings
from edgeplane.protocol.config import WafExclusionSpec, WafSpec


def waf_spec(settings: WafSettings) -> WafSpec | None:
    """The site's ``WafSpec``; None when the WAF is off (the site renders as without one).
    Exclusions keep their order; their ids and notes stay in the control plane."""
    if settings.mode == "off":
        return None
    return WafSpec(
        mode=settings.mode,
        paranoia_level=settings.paranoia_level,
        anomaly_threshold=settings.anomaly_threshold,
        exclusions=tuple(
            WafExclusionSpec(rules=tuple(e.rules), path=e.path) for e in settings.exclusions
        ),
    )
