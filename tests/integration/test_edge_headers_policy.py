"""Security headers as each project's policy says, never doubled, cached responses included;
leaking headers removed (one real nginx, a real origin sending the headers)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin

from edgeplane.model.headers_policy import HeadersPolicy
from edgeplane.protocol.config import CacheRuleSpec, SiteSpec
from edgeplane.snapshot.build import headers_spec

pytestmark = pytest.mark.integration

CUSTOM = HeadersPolicy.model_validate(
    {
        "x_frame_options": {"action": "set", "value": "DENY"},
        "x_content_type_options": {"action": "remove"},
        "referrer_policy": {"action": "keep", "value": "no-referrer"},
        "content_security_policy": {"action": "set", "value": "default-src 'self'"},
        "remove_leaking": False,
    }
)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("hdr")
    yield o
    o.terminate()


@pytest.fixture(scope="module")
def edge(origin: Origin) -> Iterator[Edge]:
    p = pool("origin.p1", backend(origin))
    rules = (CacheRuleSpec(id="all", pattern="/*", ttl=60, origin_cache_control="honour"),)
    sites = [
        SiteSpec(id="p1", domains=("default.test",), pool=p.id, cache_rules=rules),
        SiteSpec(
            id="p2",
            domains=("custom.test",),
            pool=p.id,
            cache_rules=rules,
            headers=headers_spec(CUSTOM),
        ),
    ]
    with running_edge(https=False) as e:
        e.apply(edge_config(sites, [p]))
        e.client()
        yield e


def both(edge: Edge, host: str, *headers: str) -> list[httpx.Response]:
    """A miss and the cached hit of a path whose origin sends ``headers``."""
    path = "/p?" + "&".join(f"h={quote(h, safe='')}" for h in headers)
    got = [edge.get(host, path, client=edge.clients[0]) for _ in "12"]
    assert [r.headers["x-cache-status"] for r in got] == ["MISS", "HIT"]
    return got


ORIGIN_HEADERS = (
    "X-Frame-Options: sameorigin",
    "X-Content-Type-Options: nosniff",
    "Referrer-Policy: no-referrer",
    "Content-Security-Policy: default-src *",
    "X-Powered-By: PHP/7.4.3",
    "X-AspNet-Version: 4.0.30319",
    "Server: Apache/2.4.1 (Unix)",
)


def test_default_policy_keeps_the_origins_and_fills_in(edge: Edge) -> None:
    for r in both(edge, "default.test", *ORIGIN_HEADERS):
        assert r.headers.get_list("x-frame-options") == ["sameorigin"]  # never doubled
        assert r.headers.get_list("x-content-type-options") == ["nosniff"]
        assert r.headers.get_list("referrer-policy") == ["no-referrer"]  # not weakened
        assert r.headers.get_list("content-security-policy") == ["default-src *"]
        assert "x-powered-by" not in r.headers and "x-aspnet-version" not in r.headers
        assert r.headers.get_list("server") == ["nginx"]  # no version, not the origin's
    for r in both(edge, "default.test", "X-Other: 1"):  # an origin that sends none
        assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
        assert r.headers.get_list("x-content-type-options") == ["nosniff"]
        assert r.headers.get_list("referrer-policy") == ["strict-origin-when-cross-origin"]
        assert "content-security-policy" not in r.headers
        assert "permissions-policy" not in r.headers


def test_custom_policy_sets_keeps_and_removes(edge: Edge) -> None:
    for r in both(edge, "custom.test", *ORIGIN_HEADERS):
        assert r.headers.get_list("x-frame-options") == ["DENY"]  # set: ours replaces
        assert "x-content-type-options" not in r.headers  # remove
        assert r.headers.get_list("referrer-policy") == ["no-referrer"]  # keep: the origin's
        assert r.headers.get_list("content-security-policy") == ["default-src 'self'"]
        assert r.headers.get_list("x-powered-by") == ["PHP/7.4.3"]  # leaking kept
    for r in both(edge, "custom.test", "X-Other: 2"):
        assert r.headers.get_list("x-frame-options") == ["DENY"]
        assert r.headers.get_list("referrer-policy") == ["no-referrer"]  # keep: ours
        assert "x-powered-by" not in r.headers


def test_edge_answers_carry_the_policy(edge: Edge) -> None:
    r = edge.get("unknown.test", "/", client=edge.clients[0])
    assert r.status_code == 404
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers.get_list("x-content-type-options") == ["nosniff"]
