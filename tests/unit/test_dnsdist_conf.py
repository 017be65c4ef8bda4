"""dnsdist's config and console helpers (``edgeplane.node.powerdns.dnsdist``): pure parts."""

from __future__ import annotations

import base64

import pytest

from edgeplane.node.powerdns import dnsdist
from edgeplane.node.powerdns.dnsdist import DnsdistError, find_binary, purge_commands, render_conf

KEY = bytes(range(32))


def conf(**kw: object) -> str:
    args: dict[str, object] = {
        "local_addresses": ("127.0.0.1",),
        "port": 8053,
        "backend": ("127.0.0.1", 9053),
        "console_port": 9100,
        "key": KEY,
    }
    args.update(kw)
    return render_conf(**args)  # type: ignore[arg-type]


def test_the_cache_is_keyed_by_the_whole_client_address_and_bounded_like_powerdns() -> None:
    text = conf()
    # a query without ECS is routed on the client's whole address, as PowerDNS did
    assert "setECSSourcePrefixV4(32)" in text and "setECSSourcePrefixV6(128)" in text
    assert "setECSOverride(false)" in text  # a resolver's own ECS is kept
    assert "useClientSubnet=true" in text and "disableZeroScope=false" in text
    cache = next(line for line in text.splitlines() if "newPacketCache" in line)
    for option in ("maxTTL=10", "parseECS=true", "dontAge=true", "temporaryFailureTTL=0",
                   "maxNegativeTTL=10"):  # fmt: skip
        assert option in cache, option
    assert 'newServer({address="127.0.0.1:9053"' in text


def test_listeners_console_and_key() -> None:
    text = conf(local_addresses=("127.0.0.1", "::1"))
    assert 'setLocal("127.0.0.1:8053", {reusePort=false})' in text
    assert 'addLocal("[::1]:8053", {reusePort=false})' in text
    assert 'controlSocket("127.0.0.1:9100")' in text
    assert f'setKey("{base64.b64encode(KEY).decode()}")' in text
    assert 'setSecurityPollSuffix("")' in text
    assert 'setACL({"0.0.0.0/0", "::/0"})' in text  # not dnsdist's default: private ranges
    two = conf(listeners=2)
    assert two.count("reusePort=true") == 2  # only several listeners share a port


def test_two_pools_and_one_rule_so_that_a_purge_can_switch_caches() -> None:
    text = conf()
    assert 'pool={"a", "b"}' in text
    assert text.count("newPacketCache(") == 2
    assert 'getPool("a"):setCache(' in text and 'getPool("b"):setCache(' in text
    assert 'setRules({newRuleAction(AllRule(), PoolAction("a"))})' in text
    assert 'active = "a"' in text


def test_purges_walk_a_small_cache_and_switch_a_big_one() -> None:
    (one,) = purge_commands(["b.example.", "a.example.", "a.example."])
    assert one.startswith("local c = getPool(active):getCache() ")
    assert f'c:getStats()["entries"] * 2 <= {dnsdist.WALK_LIMIT} then ' in one
    assert (
        'c:expungeByName(newDNSName("a.example."), DNSQType.ANY, true) '
        'c:expungeByName(newDNSName("b.example."), DNSQType.ANY, true) return "walked" end'
    ) in one
    assert "setRules({newRuleAction(AllRule(), PoolAction(new))})" in one
    (everything,) = purge_commands(None)
    assert "expungeByName" not in everything and "PoolAction(new)" in everything
    assert everything.endswith('active = new return "switched " .. old')
    assert purge_commands([]) == []
    assert '\\"' in purge_commands(['we"ird.'])[0]  # quoted for Lua
    assert dnsdist.drain_command("b") == 'getPool("b"):getCache():expunge(0)'
    with pytest.raises(ValueError):
        dnsdist.drain_command('a") os.exit(')


def test_console_nonces_count_like_dnsdists() -> None:
    nonce = bytearray(b"\x00\x00\x00\xff" + bytes(20))
    dnsdist._next(nonce)
    assert nonce[:4] == b"\x00\x00\x01\x00" and nonce[4:] == bytes(20)
    top = bytearray(b"\xff" * 4 + b"\x07" * 20)
    dnsdist._next(top)
    assert top == bytearray(bytes(4) + b"\x07" * 20)


def test_a_missing_dnsdist_names_the_package() -> None:
    with pytest.raises(DnsdistError, match="Debian package dnsdist"):
        find_binary("no-such-dnsdist-here")
