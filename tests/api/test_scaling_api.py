"""Scaling groups over HTTP: create, read, change, delete, and bad input refused with a
problem naming the field and leaving nothing behind. (What a group does at run time, with
real processes and a real edge, is tests/integration/test_scaling.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Api

INV = "/api/v1/infrastructure"
SG = f"{INV}/scaling-groups"
TEMPLATE = {"command": "edgeplane demo-origin --port {port}"}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc.get("field") == field, doc
    return doc


@pytest.fixture
def world(api: Api) -> Api:
    ok(api.post(f"{INV}/datacenters", json={
        "id": "dc1", "name": "DC 1", "tier": 3, "location": "us-east",
        "capacity": {"cpu": 64, "memory": 256, "storage": 2000},
    }), 201)  # fmt: skip
    ok(api.post(f"{INV}/loadbalancer", json={"id": "web", "backends": []}), 201)
    return api


def group(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "web", "load_balancer": "web", "data_center": "dc1", "template": TEMPLATE,
        "min_size": 1, "max_size": 4,
        "policies": [{"type": "target_tracking", "metric": "requests_per_second", "target": 50}],
    }  # fmt: skip
    body.update(kw)
    return body


def test_a_group_is_created_with_its_first_action_and_read_back(world: Api) -> None:
    made = ok(world.post(SG, json=group(scale_in_stabilization_s=60)), 201)
    assert made["desired"] == 1 and made["size"] == 0 and made["status"] == "steady"
    assert made["template"] == {**TEMPLATE, "env": {}, "cwd": None, "host": "127.0.0.1",
                                "stop_grace_s": 10.0}  # fmt: skip
    assert made["policies"] == [
        {"type": "target_tracking", "metric": "requests_per_second", "target": 50.0}
    ]
    assert made["last_action"]["kind"] == "scale_out"
    assert made["last_action"]["trigger"] == "created with 1 instance(s)"
    assert made["last_action"]["steps"][0]["name"] == "triggered"
    got = ok(world.get(f"{SG}/web"))
    assert got["scale_in_stabilization_s"] == 60 and got["instance_capacity"]["cpu"] == 1
    assert [g["id"] for g in ok(world.get(SG))["items"]] == ["web"]
    history = ok(world.get(f"{SG}/web/actions"))["items"]
    assert [a["to_size"] for a in history] == [1]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"min_size": 5, "max_size": 2}, "min_size", "above max_size"),
        ({"driver": "kubernetes"}, "driver", "unknown driver"),
        ({"template": {"command": "python3 -m http.server"}}, "template", "{port}"),
        ({"template": {"command": "serve --port {prot}"}}, "template.command", "{prot}"),
        ({"template": {}}, "template.command", "required"),
        ({"policies": [{"type": "target_tracking", "metric": "disk_iops", "target": 5}]},
         "policies.0.target_tracking.metric", "requests_per_second"),
        ({"policies": [{"type": "step", "metric": "cpu_percent",
                        "steps": [{"above": 80, "below": 10, "change": 1}]}]},
         "policies.0.step.steps.0", "exactly one"),
        ({"load_balancer": "nope"}, "load_balancer", "no load balancer"),
        ({"data_center": "nope"}, "data_center", "no data center"),
        ({"desired": 9}, "desired", "within min_size (1) and max_size (4)"),
        ({"desired": 0, "min_size": 1}, "desired", "within min_size"),
        ({"schedule": [{"cron": "every morning", "duration_minutes": 60, "min_size": 2}]},
         "schedule.0.cron", "cron expression"),
        ({"schedule": [{"cron": "0 9 * * *", "duration_minutes": 60, "min_size": 9}]},
         "schedule.0.min_size", "max_size"),
        ({"driver": "cloud", "template": {"provider": "gce", "image": "i", "size": "s",
                                          "port": 80, "credentials": {"key": "AKIA123"}}},
         "template.credentials", "reference"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field_and_leaves_nothing(
    world: Api, change: dict[str, Any], field: str, words: str
) -> None:
    doc = problem(world.post(SG, json=group(**change)), field)
    assert words in doc["detail"], doc
    assert ok(world.get(SG))["items"] == []


def test_an_unknown_cloud_provider_is_refused(world: Api) -> None:
    template = {"provider": "nowhere-cloud", "image": "i", "size": "s", "port": 80}
    doc = problem(
        world.post(SG, json=group(driver="cloud", template=template)), "template.provider"
    )
    assert "nowhere-cloud" in doc["detail"]


def test_desired_set_is_a_manual_action_within_the_bounds(world: Api) -> None:
    ok(world.post(SG, json=group()), 201)
    out = ok(world.patch(f"{SG}/web", json={"desired": 3}))
    assert out["desired"] == 3 and out["last_action"]["trigger"].startswith("desired set to 3 by")
    assert out["last_action"]["kind"] == "scale_out" and out["last_action"]["from_size"] == 1
    problem(world.patch(f"{SG}/web", json={"desired": 7}), "desired")
    problem(world.patch(f"{SG}/web", json={"min_size": 6}), "min_size")
    out = ok(world.patch(f"{SG}/web", json={"max_size": 2}))
    assert out["desired"] == 2  # clamped by the new bound
    problem(world.patch(f"{SG}/web", json={"id": "other"}), "id")


def test_one_group_per_load_balancer_and_a_scaled_load_balancer_stays(world: Api) -> None:
    ok(world.post(SG, json=group()), 201)
    problem(world.post(SG, json=group(id="web2")), "load_balancer", 409)
    r = world.delete(f"{INV}/loadbalancer/web")
    assert r.status_code == 409 and "scaling group 'web'" in r.text


def test_a_group_without_instances_is_deleted_at_once(world: Api) -> None:
    ok(world.post(SG, json=group(min_size=0, desired=0)), 201)
    assert world.delete(f"{SG}/web").status_code == 204
    assert world.get(f"{SG}/web").status_code == 404
    assert world.delete(f"{INV}/loadbalancer/web").status_code == 204


def test_resume_is_for_a_stopped_group(world: Api) -> None:
    ok(world.post(SG, json=group()), 201)
    r = world.post(f"{SG}/web/resume")
    assert r.status_code == 409 and "not stopped" in r.text
