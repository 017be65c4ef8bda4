"""Big maps in shard files (``render_shards``): the same effective configuration as the maps
inline, the same release whatever was rendered before (an engine's ``RenderMemo``), and a
change of one site touches one shard per map it is in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeplane.node.nginx import render_shards
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render import Release, RenderMemo, render_release
from edgeplane.protocol.config import (
    BackendSpec,
    CacheRuleSpec,
    CertSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    VerificationSpec,
)

LOCAL = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="edge-1", http_port=80, https_port=443)
N = 1200  # above SHARD_MIN: the maps keyed by host, SNI name and site are sharded
INCLUDE = re.compile(r"^(\s*)include \.\./\.\./maps/([0-9a-f]+\.map);$")


def _domain(i: int) -> str:
    return f"d{i}.shards.test"


def _cert(i: int, generation: int = 0) -> CertSpec:
    return CertSpec(
        id=f"cert-{i}-{generation}",
        names=(_domain(i),),
        cert_pem="CERT\n",
        key_pem="KEY\n",
        not_after=f"2030-01-{1 + generation:02d}T00:00:00Z",
    )


class Platform:
    def __init__(self) -> None:
        self.sites = set(range(N))
        self.generation = dict.fromkeys(range(N), 0)
        self.ttl = 600
        self.revision = 0

    def site(self, i: int) -> SiteSpec:
        if i % 100:
            return SiteSpec(id=f"s{i:05d}", domains=(_domain(i),), pool=None, force_https=True)
        rules = (
            CacheRuleSpec(id=f"r{i}", pattern="/static/*", ttl=self.ttl),
            CacheRuleSpec(id=f"q{i}", pattern="*.css", ttl=60),
        )
        return SiteSpec(
            id=f"s{i:05d}",
            domains=(_domain(i),),
            pool=f"origin.s{i:05d}",
            cache_rules=rules,
            force_https=True,
            hsts_max_age=3600,
        )

    def snapshot(self) -> EdgeConfig:
        self.revision += 1
        ids = sorted(self.sites)
        return EdgeConfig(
            revision=self.revision,
            node=NodeSpec(id="n1", name="edge-1", region="eu"),
            sites=tuple(self.site(i) for i in ids),
            pools=tuple(
                PoolSpec(
                    id=f"origin.s{i:05d}",
                    algorithm="round_robin",
                    backends=(BackendSpec(key="o", host="10.0.0.1", port=8000 + i),),
                )
                for i in ids
                if i % 100 == 0
            ),
            certs=tuple(
                sorted(
                    (_cert(i, self.generation[i]) for i in ids if i % 7), key=lambda c: c.id
                )
            ),  # one site in seven has no certificate yet
            verifications=tuple(
                VerificationSpec(domain=_domain(i), token=f"tok{i}") for i in ids if i % 3 == 0
            ),
        )


def _expanded(release: Release) -> dict[str, str]:
    """The release's files with each shard's lines where its ``include`` is."""
    out = {}
    for name, content in release.files.items():
        lines = []
        for line in content.decode().splitlines():
            m = INCLUDE.match(line)
            if m is None:
                lines.append(line)
                continue
            shard = release.shards[m.group(2)].decode().splitlines()
            lines += [m.group(1) + entry for entry in shard]
        out[name] = "\n".join(lines)
    return out


def _effective(files: dict[str, str]) -> dict[str, list[str]]:
    """Each file's lines with every map's entries sorted (nginx matches a literal key the same
    wherever it is in its map), the release's marker left out."""
    out: dict[str, list[str]] = {}
    for name, text in files.items():
        if name == "status.conf":
            continue
        lines: list[str] = []
        entries: list[str] | None = None
        for line in text.splitlines():
            if entries is not None:
                if line.strip() == "}":
                    lines += [*sorted(entries), line]
                    entries = None
                else:
                    entries.append(line)
            else:
                lines.append(line)
                if line.startswith("map ") and line.endswith("{"):
                    entries = []
        out[name] = lines
    return out


def _inline(config: EdgeConfig, monkeypatch: pytest.MonkeyPatch) -> Release:
    with monkeypatch.context() as m:
        m.setattr(render_shards, "SHARD_MIN", 10**9)
        return render_release(config, LOCAL, LocalHealth())


def test_a_sharded_release_is_the_inline_one_with_its_big_maps_in_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = Platform().snapshot()
    sharded = render_release(config, LOCAL, LocalHealth())
    inline = _inline(config, monkeypatch)
    assert not inline.shards
    sites_map = sharded.files["sites.map"].decode()
    for target in ("$site_id", "$redirect_https", "$cert_name", "$site_default_loc"):
        head = sites_map[sites_map.index(f" {target} {{") :]
        assert "include ../../maps/" in head[: head.index("}")], target
    count = render_shards.shard_count(N)
    for content in sharded.shards.values():
        assert content.count(b"\n") < 2 * N / count + 50  # about even
    assert _effective(_expanded(sharded)) == _effective(_expanded(inline))


def _changes(p: Platform) -> list[tuple[str, EdgeConfig]]:
    out = [("base", p.snapshot())]
    p.sites.add(N)
    p.generation[N] = 0
    out.append(("add", p.snapshot()))
    p.sites.discard(N)
    out.append(("remove", p.snapshot()))
    p.generation[8] += 1
    out.append(("renew", p.snapshot()))
    p.ttl += 1
    out.append(("cache rule of one site", p.snapshot()))
    p.sites.discard(3)
    out.append(("remove a verified site", p.snapshot()))
    return out


def test_a_render_after_changes_equals_a_render_from_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = RenderMemo()  # an engine's: each render starts from the one before
    for what, config in _changes(Platform()):
        warm = render_release(config, LOCAL, LocalHealth(), memo)
        cold = render_release(config, LOCAL, LocalHealth())
        assert warm == cold, what
        assert _effective(_expanded(warm)) == _effective(_expanded(_inline(config, monkeypatch)))


def test_one_site_changed_changes_one_shard_per_map_it_is_in() -> None:
    p = Platform()
    before = render_release(p.snapshot(), LOCAL, LocalHealth())
    p.sites.add(N + 1)
    p.generation[N + 1] = 0
    added = render_release(p.snapshot(), LOCAL, LocalHealth())
    # $site_id, $redirect_https, $cert_name, $site_default_loc: one shard each; $sni_owner
    # and $host_owner one between them (the same entries: the same shard file)
    assert len(set(added.shards) - set(before.shards)) == 5
    assert len(set(before.shards) - set(added.shards)) == 5
    p.generation[8] += 1  # a renewal: the same links, the same configuration
    renewed = render_release(p.snapshot(), LOCAL, LocalHealth())
    assert renewed.shards == added.shards
    assert renewed.marker == added.marker


def test_the_memo_holds_one_string_per_key_across_renders() -> None:
    """Each render makes its maps' keys anew; the memo keeps the strings it already holds for
    the keys that did not change (a second copy of every key of every big map was megabytes
    of a node's memory at 10,000 domains), and the new keys' strings."""
    memo: render_shards.ShardMemo = {}
    names = [f"d{i}.example.com" for i in range(3000)]
    render_shards.Shards(memo=memo).sharded_map("$host", "$site", {n: "a" for n in names})
    first = {id(k) for k in memo["$host $site"].entries}
    again = {"d" + n[1:]: "a" for n in names[1:]}  # equal keys, other strings; one removed
    again["new.example.com"] = "b"
    again["d1.example.com"] = "c"  # a value changed
    shards = render_shards.Shards(memo=memo)
    shards.sharded_map("$host", "$site", again)
    kept = memo["$host $site"].entries
    assert kept == again
    assert sum(id(k) in first for k in kept) == len(names) - 1  # all but the new key
    rendered = "".join(c.decode() for c in shards.files.values())
    assert '"new.example.com" b;' in rendered and '"d1.example.com" c;' in rendered
