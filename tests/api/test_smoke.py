from __future__ import annotations

from conftest import Api


def test_create_and_read_server(api: Api) -> None:
    body = {
        "id": "web-1",
        "name": "Web 1",
        "type": "primary",
        "region": "europe",
        "location": "eu-central",
        "capacity": {"cpu": 8, "memory": 32, "storage": 500},
    }
    r = api.post("/api/v1/infrastructure/servers", json=body)
    assert r.status_code == 201, r.text
    r = api.get("/api/v1/infrastructure/servers/web-1")
    assert r.json()["location"] == "eu-central"
    assert api.get("/api/v1/revision").json()["revision"] >= 2
