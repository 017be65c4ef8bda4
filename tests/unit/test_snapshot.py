"""The snapshot is a pure function of the desired state: rules, defaults, determinism."""

from __future__ import annotations

from edgeplane.model.cdn import CacheKey, CacheRule, EdgeSecurity, Origin, RateLimit
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import (
    BackendState,
    CDNState,
    CertState,
    DeploymentState,
    DesiredState,
    LoadBalancerState,
    node_bundles,
    node_prefetch,
    snapshot,
)

NODE = NodeSpec(id="node-1", name="edge-a", region="eu-central")
HC = {"protocol": "http", "path": "/healthz", "interval_s": 2.0, "timeout_s": 1.0,
      "healthy_threshold": 2, "unhealthy_threshold": 3, "expected_status": "200-299"}  # fmt: skip


def lb(project: str, lb_id: str, *backends: BackendState, **kw: object) -> LoadBalancerState:
    return LoadBalancerState(
        project=project, id=lb_id, algorithm=str(kw.get("algorithm", "least_conn")),
        backends=backends, health_check=HC, options=kw.get("options", {}),  # type: ignore[arg-type]
    )  # fmt: skip


def cert(domain: str) -> CertState:
    return CertState(
        cert_pem=f"CERT {domain}", key_pem=f"KEY {domain}", names=(domain,),
        not_after="2030-01-01T00:00:00+00:00", id=f"id-{domain}",
    )  # fmt: skip


def state(**kw: object) -> DesiredState:
    return DesiredState(**kw)  # type: ignore[arg-type]


def test_same_input_same_output_and_hash_without_revision() -> None:
    s = state(
        domains={"shop": ("b.test", "a.test"), "blog": ("blog.test",)},
        load_balancers={
            ("shop", "web"): lb(
                "shop", "web", BackendState("10.0.0.2:80"), BackendState("10.0.0.1:80")
            )
        },
        certs={"a.test": cert("a.test")},
    )
    one, two = snapshot(s, NODE, 5), snapshot(s, NODE, 5)
    assert one == two and one.model_dump_json() == two.model_dump_json()
    assert [site.id for site in one.sites] == ["blog", "shop"]
    assert one.sites[1].domains == ("a.test", "b.test")
    assert [b.key for b in one.pools[0].backends] == ["10.0.0.1:80", "10.0.0.2:80"]
    later = snapshot(s, NODE, 9)
    assert later.revision == 9 and later.content_hash() == one.content_hash()
    other_node = snapshot(s, NodeSpec(id="node-2", name="edge-b", region="eu-central"), 5)
    assert other_node.content_hash() != one.content_hash()
    changed = snapshot(state(**{**s.__dict__, "domains": {"shop": ("a.test",)}}), NODE, 5)
    assert changed.content_hash() != one.content_hash()


def test_server_ids_resolve_to_their_address_and_keys_stay_as_given() -> None:
    s = state(
        domains={"p": ("p.test",)},
        load_balancers={
            ("p", "web"): lb(
                "p",
                "web",
                BackendState("srv-1"),
                BackendState("srv-2", port=8080, weight=3),
                BackendState("srv-3:9000", backup=True),  # host:port, not a server
                BackendState("https://api.example:8443", state="draining"),
                BackendState("srv-gone"),  # no such server: left out
                BackendState("srv-noaddr"),  # no address: left out
                BackendState("[::1]:81"),
            )
        },
        servers={
            ("p", "srv-1"): "10.1.0.1",
            ("p", "srv-2"): "10.1.0.2",
            ("p", "srv-noaddr"): None,
        },
    )
    pool = snapshot(s, NODE, 1).pools[0]
    got = {b.key: (b.scheme, b.host, b.port, b.weight, b.backup, b.state) for b in pool.backends}
    assert got == {
        "srv-1": ("http", "10.1.0.1", 80, 1, False, "active"),
        "srv-2:8080": ("http", "10.1.0.2", 8080, 3, False, "active"),
        "srv-3:9000": ("http", "srv-3", 9000, 1, True, "active"),
        "https://api.example:8443": ("https", "api.example", 8443, 1, False, "draining"),
        "[::1]:81": ("http", "[::1]", 81, 1, False, "active"),
    }
    assert pool.id == "lb.p.web" and pool.algorithm == "least_conn"
    assert pool.health_check is not None and pool.health_check.path == "/healthz"
    assert (pool.connect_timeout_s, pool.read_timeout_s, pool.retries) == (2.0, 30.0, 1)


def test_pools_come_from_the_cdn_origins_and_are_listed_once() -> None:
    web = lb("p", "web", BackendState("10.0.0.1:80"), options={"retries": 3, "read_timeout_s": 5})
    s = state(
        domains={"p": ("p.test",), "q": ("q.test",), "r": ("r.test",)},
        load_balancers={
            ("p", "web"): web,
            ("p", "spare"): lb("p", "spare", BackendState("1.1.1.1:1")),
        },
        cdn={
            # The same load balancer named twice: one pool.
            "p": CDNState(origins=(Origin(load_balancer="web"), Origin(load_balancer="web"))),
            "q": CDNState(origins=(
                Origin(url="http://127.0.0.1:9001", weight=2),
                Origin(url="http://127.0.0.1:9002", backup=True),
                Origin(url="http://127.0.0.1:9001"),
            )),
            "r": CDNState(origins=(Origin(load_balancer="missing"),)),
        },
    )  # fmt: skip
    config = snapshot(s, NODE, 1)
    assert [p.id for p in config.pools] == ["lb.p.web", "origin.q"]
    assert {site.id: site.pool for site in config.sites} == {
        "p": "lb.p.web", "q": "origin.q", "r": None,
    }  # fmt: skip
    web_pool, origin = config.pools
    assert (web_pool.retries, web_pool.read_timeout_s) == (3, 5.0)
    assert origin.algorithm == "round_robin" and origin.health_check is None
    assert [(b.key, b.weight, b.backup) for b in origin.backends] == [
        ("http://127.0.0.1:9001", 2, False), ("http://127.0.0.1:9002", 1, True),
    ]  # fmt: skip


def test_defaults_without_a_cdn_config() -> None:
    one_lb = lb("p", "web", BackendState("10.0.0.1:80"))
    s = state(
        domains={"p": ("p.test",), "two": ("two.test",), "none": ("none.test", "c.test")},
        load_balancers={
            ("p", "web"): one_lb,
            ("two", "a"): lb("two", "a", BackendState("10.0.0.1:80")),
            ("two", "b"): lb("two", "b", BackendState("10.0.0.1:80")),
        },
        certs={"p.test": cert("p.test"), "c.test": cert("c.test")},
    )
    sites = {site.id: site for site in snapshot(s, NODE, 1).sites}
    assert sites["p"].pool == "lb.p.web"  # the project's only load balancer
    assert sites["two"].pool is None  # two load balancers and no CDN config: ambiguous
    assert sites["none"].pool is None
    assert sites["p"].cache_rules == () and sites["p"].hsts_max_age == 0
    assert sites["p"].force_https is True  # every domain has a certificate
    assert sites["none"].force_https is False  # none.test has none
    assert sites["two"].force_https is False
    assert [c.names for c in snapshot(s, NODE, 1).certs] == [("c.test",), ("p.test",)]


def test_cache_rules_and_security_come_from_the_cdn_config() -> None:
    rules = (
        CacheRule(id="r1", pattern="/static/*", ttl=60, bypass=False,
                  cache_key=CacheKey(query=["v", "lang"], headers=["Accept-Language"]),
                  origin_cache_control="honour", stale_if_error=True,
                  stale_while_revalidate=True),
        CacheRule(id="r2", pattern="/api/*", ttl=0, bypass=True, cache_key=CacheKey(),
                  origin_cache_control="override", stale_if_error=False,
                  stale_while_revalidate=False),
    )  # fmt: skip
    security = EdgeSecurity(
        force_https=True, hsts_max_age=300, rate_limit=RateLimit(rate=10, burst=5),
        ip_allow=["10.0.0.0/8", "127.0.0.1"], ip_deny=["10.9.0.0/16"],
    )  # fmt: skip
    s = state(
        domains={"p": ("p.test",)},
        cdn={
            "p": CDNState(
                origins=(Origin(url="http://127.0.0.1:9001"),), cache_rules=rules, security=security
            )
        },
        certs={"p.test": cert("p.test")},
    )
    site = snapshot(s, NODE, 1).sites[0]
    assert [r.id for r in site.cache_rules] == ["r1", "r2"]  # order kept: first match wins
    assert site.cache_rules[0].cache_key.query == ("v", "lang")
    assert site.cache_rules[0].cache_key.headers == ("accept-language",)
    assert site.cache_rules[0].origin_cache_control == "honour"
    assert site.cache_rules[1].bypass is True
    assert site.force_https is True and site.hsts_max_age == 300
    assert site.rate_limit is not None and (site.rate_limit.rate, site.rate_limit.burst) == (10, 5)
    assert site.ip_allow == ("10.0.0.0/8", "127.0.0.1/32") and site.ip_deny == ("10.9.0.0/16",)
    # HTTPS is not forced when a domain has no certificate, whatever the config says.
    no_cert = snapshot(state(**{**s.__dict__, "certs": {}}), NODE, 1).sites[0]
    assert no_cert.force_https is False


# Edge deployments: which bundle each node serves ----------------------------------------------


def _dep(id_: str, status: str, regions: tuple[str, ...], **kw: object) -> DeploymentState:
    return DeploymentState(
        project="p", id=id_, version=int(id_[-1]), bundle=id_[-1] * 64, size=1,
        regions=regions, status=status, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_node_serves_its_regions_version_and_the_canary_goes_first() -> None:
    eu1 = NodeSpec(id="n1", name="eu-1", region="eu-central")
    eu2 = NodeSpec(id="n2", name="eu-2", region="eu-central")
    ap = NodeSpec(id="n3", name="ap-1", region="ap-northeast")
    active = _dep("d1", "active", ("eu-central", "us-east"))
    canary = _dep("d2", "canary", ("eu-central",), canary_node="n1")
    deployments = (active, canary)

    def served_by(node: NodeSpec, deps: tuple[DeploymentState, ...]) -> list[str]:
        return [b.deployment for b in node_bundles(deps, node)]

    assert served_by(eu1, deployments) == ["d2"]  # the canary
    assert served_by(eu2, deployments) == ["d1"]  # the rest keep the active version...
    assert node_prefetch(deployments, eu2) == ("2" * 64,)  # ...and fetch the new one ahead
    assert node_prefetch(deployments, eu1) == () and node_prefetch(deployments, ap) == ()
    assert served_by(ap, deployments) == []  # not in any region: the origin
    rolling = (active, _dep("d2", "rolling", ("eu-central",)))
    assert served_by(eu1, rolling) == served_by(eu2, rolling) == ["d2"]
    us = NodeSpec(id="n4", name="us-1", region="us-east")
    assert served_by(us, rolling) == ["d1"]  # left by the new version, kept until it is active
    assert served_by(us, (_dep("d2", "active", ("eu-central",)),)) == []


def test_wait_for_check_reaches_the_backend_and_is_left_out_of_the_json_while_off() -> None:
    s = state(
        domains={"p": ("p.test",)},
        load_balancers={
            ("p", "web"): lb(
                "p", "web", BackendState("10.0.0.1:80"),
                BackendState("10.0.0.2:80", wait_for_check=True),
            )
        },
    )  # fmt: skip
    config = snapshot(s, NODE, 1)
    plain, waiting = config.pools[0].backends
    assert (plain.wait_for_check, waiting.wait_for_check) == (False, True)
    # Off, the field is not in the JSON: a backend without it dumps and hashes as before,
    # and agents of protocol 1 (their models forbid unknown fields) take it.
    assert "wait_for_check" not in plain.model_dump(mode="json")
    assert waiting.model_dump(mode="json")["wait_for_check"] is True
    before = state(**{**s.__dict__, "load_balancers": {("p", "web"): lb(
        "p", "web", BackendState("10.0.0.1:80"), BackendState("10.0.0.2:80"))}})  # fmt: skip
    assert snapshot(before, NODE, 1).content_hash() != config.content_hash()
    assert "wait_for_check" not in snapshot(before, NODE, 1).model_dump_json()
