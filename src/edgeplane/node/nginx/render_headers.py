"""Security headers as each site's policy says (``SiteSpec.headers``), never duplicated.

For each policy header the edge hides the origin's (``proxy_hide_header``) and adds one of its
own whose value a ``map`` computes from the policy and the origin's value
(``$upstream_http_*``, which on a cached hit is the stored response's): ``keep`` sends the
origin's, else ours; ``set`` ours; ``remove`` nothing (an empty ``add_header`` adds no header).
What a request pays is only what the snapshot needs: when every site has the same rule for a
header, its maps have no ``$site_id`` dimension (a ``keep`` with our value: one hash lookup on
the origin's value; a ``keep`` without one: nothing at all; ``set``: a static header;
``remove``: a hidden header). Only a header whose rule differs between sites looks the site up.

Leaking headers (``X-Powered-By`` and the ASP.NET versions) are hidden when every site removes
them (the default: no cost per request), else passed for the sites that keep them by a map.
"""

from __future__ import annotations

from edgeplane.node.nginx.syntax import block, lit, map_block
from edgeplane.protocol.config import SiteSpec
from edgeplane.protocol.headers import DEFAULT_RULES, HEADERS, LEAKING, HeaderRuleSpec

_DEFAULT_RULES = {
    HEADERS[field]: HeaderRuleSpec(name=HEADERS[field], action=action, value=value or "")
    for field, (action, value) in DEFAULT_RULES.items()
}


def _var(name: str) -> str:
    return name.lower().replace("-", "_")


def _rules(site: SiteSpec) -> dict[str, HeaderRuleSpec]:
    if site.headers is None:
        return _DEFAULT_RULES
    return {rule.name: rule for rule in site.headers.rules}


def render_headers(sites: list[SiteSpec]) -> tuple[str, str]:
    """(the lines for ``headers.conf``, the http-level maps)."""
    lines: list[str] = []
    maps = ""
    per_site = [(site.id, _rules(site)) for site in sites]
    for name in HEADERS.values():
        upstream = f"$upstream_http_{_var(name)}"
        edge = f"$hp_{_var(name)}"
        used = {rules.get(name, _DEFAULT_RULES[name]) for _, rules in per_site}
        if not used:
            used = {_DEFAULT_RULES[name]}
        if len(used) == 1:
            (rule,) = used
            if rule.action == "keep" and not rule.value:
                continue  # the origin's passes as it is
            lines.append(f"proxy_hide_header {name};")
            if rule.action == "set":
                lines.append(f"add_header {name} {lit(rule.value)} always;")
            elif rule.action == "keep":
                maps += map_block(upstream, edge, [("", lit(rule.value))], default=upstream)
                lines.append(f"add_header {name} {edge} always;")
            continue
        # rules differ between sites: the site's mode and value, then the header's value
        default = _DEFAULT_RULES[name]
        modes = [(sid, rules[name].action[0]) for sid, rules in per_site if rules[name] != default]
        values = [
            (sid, lit(rules[name].value)) for sid, rules in per_site if rules[name] != default
        ]
        maps += map_block("$site_id", f"{edge}_mode", modes, default=default.action[0])
        maps += map_block("$site_id", f"{edge}_ours", values, default=lit(default.value))
        # keep without the origin's: ours; keep with it: the origin's; set: ours; remove: none
        cases = ['default "";', f'"k|" {edge}_ours;', f"~^k\\| {upstream};", f"~^s\\| {edge}_ours;"]
        maps += block(f'map "{edge}_mode|{upstream}" {edge}', cases)
        lines.append(f"proxy_hide_header {name};")
        lines.append(f"add_header {name} {edge} always;")
    keeping = [s.id for s in sites if s.headers is not None and not s.headers.remove_leaking]
    for name in LEAKING:
        lines.append(f"proxy_hide_header {name};")
        if keeping:
            upstream = f"$upstream_http_{_var(name)}"
            lines.append(f"add_header {name} $hp_{_var(name)} always;")
            maps += map_block("$hp_keep_leaking", f"$hp_{_var(name)}", [("1", upstream)])
    if keeping:
        maps += map_block("$site_id", "$hp_keep_leaking", [(sid, "1") for sid in keeping])
    return "".join(f"{line}\n" for line in lines), maps
