"""The edge function models: route patterns and methods, variables, limits, code size, and
route overlap (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edgeplane.model.functions import (
    FunctionDeploy,
    FunctionLimits,
    FunctionRoute,
    split_pattern,
)
from edgeplane.services.function_routes import overlaps


def route(pattern: str, *methods: str) -> FunctionRoute:
    return FunctionRoute(pattern=pattern, methods=list(methods))


def test_patterns_split_into_host_and_path() -> None:
    assert split_pattern("*/api/*") == ("*", "/api/*")
    assert split_pattern("Shop.Example.com./") == ("shop.example.com", "/")
    assert split_pattern("a.test/x/y.json") == ("a.test", "/x/y.json")
    assert route("SHOP.test/a*").pattern == "shop.test/a*"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("api/*", "must be HOST/PATH"),
        ("/api", "must be HOST/PATH"),
        ("shop", "must be HOST/PATH"),
        ("localhost/a", "must be HOST/PATH"),
        ("sh op.test/a", "is not a host name"),
        ("*.test/a", "is not a host name"),
        ("*/a*b", "only as the last character"),
        ("*/a?b=1", "must not contain ?"),
        ("*/a#b", "must not contain ?"),
        ("*/a b", "white space"),
        ("*/a\x01", "control characters"),
        ("*/" + "a" * 511, "at most 512"),
    ],
)
def test_bad_patterns(pattern: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        route(pattern)


def test_methods_upper_cased_deduplicated_in_order() -> None:
    assert route("*/a", "post", "GET", "get").methods == ["GET", "POST"]
    assert route("*/a").methods == []
    with pytest.raises(ValidationError, match="FETCH: not one of GET, HEAD"):
        route("*/a", "fetch")


def test_limits_bounds() -> None:
    assert FunctionLimits().model_dump() == {"timeout_ms": 5000, "memory_mb": 128}
    for bad in ({"timeout_ms": 0}, {"timeout_ms": 60_001}, {"memory_mb": 7},
                {"memory_mb": 1025}, {"timeout_ms": True}, {"timeout_ms": "5"}):  # fmt: skip
        with pytest.raises(ValidationError):
            FunctionLimits.model_validate(bad)


def deploy(**body: Any) -> FunctionDeploy:
    return FunctionDeploy.model_validate({"code": "export default {}", **body})


def test_deploy_body() -> None:
    body = deploy(env={"A_1": "x"}, secrets={"_K": "v", "GONE": None}, check_path="")
    assert body.routes is None and body.limits is None and body.check_path == ""
    assert body.secrets == {"_K": "v", "GONE": None}
    assert deploy(code="é" * (512 * 1024)).code  # 1 MiB of UTF-8 exactly
    for bad, where in (
        ({"code": ""}, "code"),
        ({"code": "é" * (512 * 1024) + "x"}, "code"),
        ({"code": "a\x00b"}, "code"),
        ({"env": {"1A": "x"}}, "env"),
        ({"env": {"A" * 65: "x"}}, "env"),
        ({"env": {"A": "x" * 5121}}, "env"),
        ({"env": {f"V{i}": "" for i in range(65)}}, "env"),
        ({"secrets": {"A-B": "x"}}, "secrets"),
        ({"check_path": "health"}, "check_path"),
        ({"check_path": "/a b"}, "check_path"),
        ({"message": "m" * 201}, "message"),
        ({"routes": []}, "routes"),
        ({"routes": [{"pattern": "*/a"}] * 51}, "routes"),
        ({"other": 1}, "other"),
    ):
        with pytest.raises(ValidationError) as err:
            deploy(**bad)
        assert err.value.errors()[0]["loc"][0] == where, bad


def test_overlap_needs_the_same_path_a_meeting_host_and_method() -> None:
    assert overlaps(route("*/api/*"), route("shop.test/api/*", "GET"))
    assert overlaps(route("a.test/x", "GET", "POST"), route("a.test/x", "POST"))
    assert not overlaps(route("a.test/x"), route("b.test/x"))
    assert not overlaps(route("*/api/*"), route("*/api/v1/*"))  # the longer path is specific
    assert not overlaps(route("*/x", "GET"), route("*/x", "POST"))
    assert overlaps(route("*/x"), route("*/x", "DELETE"))  # none: every method


def test_names_match_whole_strings() -> None:
    from edgeplane.errors import InvalidInput
    from edgeplane.services.function_views import check_name

    assert check_name("a") == "a" and check_name("geo-redirect-2") == "geo-redirect-2"
    for bad in ("a\n", "-a", "a-", "A", "a_b", "a" * 64, ""):
        with pytest.raises(InvalidInput):
            check_name(bad)
    with pytest.raises(ValidationError, match="is not a variable name"):
        deploy(env={"A\n": "x"})
    with pytest.raises(ValidationError, match="is not a host name"):
        route("a.test\n/x")
