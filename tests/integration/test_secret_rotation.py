"""Rotating the key of secrets at rest under real API traffic: ``edgeplane serve --workers 2``
(two processes on one keyring file, one of them running the background jobs) keeps answering
while a new key is added, made primary, every stored secret re-encrypted by the runner's job
and the old key retired. Acceptance: zero failed requests, and every secret still readable.

The traffic reads certificates' private keys through the API (each worker decrypts them), and
issues new internal certificates (the internal CA's key decrypted, a new private key encrypted
by whichever worker answers, then read back, possibly by the other worker: a value under a key
that this worker learnt a moment ago).
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import wait_for
from processes import ControlPlane, clean_env, free_port

from edgeplane.secrets import Keyring, SecretBox

INV = "/api/v1/infrastructure"
S = "/api/v1/secrets"
DOMAINS = ("a.test", "b.test", "c.test", "d.test")


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    home = tmp_module / "home"
    port = free_port()
    log = tmp_module / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "serve", "--home", str(home),
             "--port", str(port), "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )  # fmt: skip
    plane = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(
            lambda: (
                process.poll() is not None
                or httpx.get(f"{plane.url}/healthz", timeout=1).status_code == 200
            ),
            60,
            "the control plane",
        )
        assert process.poll() is None, plane.output()
        yield plane
    finally:
        if plane.process.poll() is None:
            plane.stop(signal.SIGTERM)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def ended(api: httpx.Client, job_id: str) -> bool:
    job = ok(api.get(f"{S}/status"))["reencryption"]
    return bool(job["id"] == job_id and job["status"] in ("done", "failed"))


def test_key_rotation_under_traffic_fails_no_request(cp: ControlPlane) -> None:
    api = httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {cp.token}"}, timeout=30)
    certs: dict[str, tuple[str, str]] = {}  # domain -> (certificate id, private key)
    for d in (*DOMAINS, "fresh.test"):
        ok(api.post(f"{INV}/domains", json={"domain": d, "dnssec": d == "a.test"}), 201)
    for d in DOMAINS:
        cert = ok(api.post(f"{INV}/ssl/{d}", json={"type": "internal"}), 201)["certificate"]
        certs[d] = (cert["id"], ok(api.get(f"{INV}/ssl/{d}/private-key"))["key_pem"])
    channel = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"}
    ok(api.post("/api/v1/alerts/channels", json={"id": "ops", "name": "Ops", "config": channel}),
       201)  # fmt: skip
    before = ok(api.get(f"{S}/status"))
    old = before["primary"]
    assert before["source"] == "file" and before["unreadable"] == 0

    stop = threading.Event()
    done: list[str] = []
    failed: list[str] = []

    def record(what: str, r: httpx.Response | None, exc: Exception | None = None) -> Any:
        if exc is not None:
            failed.append(f"{what}: {exc!r}")
            return None
        assert r is not None
        if r.status_code >= 300:
            failed.append(f"{what}: {r.status_code} {r.text[:200]}")
            return None
        done.append(what)
        return r.json()

    def reader(n: int) -> None:
        client = httpx.Client(base_url=cp.url, headers=api.headers, timeout=30)
        for d in itertools.cycle(DOMAINS[n:] + DOMAINS[:n]):
            if stop.is_set():
                return
            cid, pem = certs[d]
            try:
                r = client.get(f"{INV}/ssl/{d}/private-key", params={"certificate_id": cid})
            except httpx.TransportError as exc:
                record("read", None, exc)
                continue
            doc = record("read", r)
            if doc is not None and doc["key_pem"] != pem:
                failed.append(f"read {d}: another key came back")

    def issuer() -> None:
        client = httpx.Client(base_url=cp.url, headers=api.headers, timeout=30)
        while not stop.is_set():
            try:
                r = client.post(f"{INV}/ssl/fresh.test", json={"type": "internal"})
                doc = record("issue", r)
                if doc is None:
                    continue
                cid = doc["certificate"]["id"]
                for _ in range(2):  # read back, on whichever worker answers (new connections)
                    back = httpx.get(
                        f"{cp.url}{INV}/ssl/fresh.test/private-key",
                        params={"certificate_id": cid},
                        headers=api.headers,
                        timeout=30,
                    )
                    record("read new", back)
            except httpx.TransportError as exc:
                record("issue", None, exc)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(2)]
    threads.append(threading.Thread(target=issuer, daemon=True))
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(done) >= 20, 20, "traffic before the rotation")
        # 1. add a secondary key; 2. make it primary
        new = ok(api.post(f"{S}/keys"), 201)["id"]
        assert ok(api.post(f"{S}/keys/{new}/primary"))["primary"] == new
        wait_for(lambda: done.count("issue") >= 3, 20, "certificates issued under the new key")
        # 3. re-encrypt (the runner's job, on the worker that leads); 4. retire the old key.
        # A value written under the old key by a worker that had not read the file again yet
        # is caught by the retirement's check (409): re-encrypt once more then.
        retired = None
        for _ in range(5):
            job = ok(api.post(f"{S}/reencrypt"), 202)
            wait_for(lambda j=job["id"]: ended(api, j), 60, "the re-encryption")
            r = api.delete(f"{S}/keys/{old}")
            if r.status_code == 200:
                retired = r.json()
                break
            assert r.status_code == 409, r.text
        assert retired is not None, "the old key could not be retired"
        mark = len(done)
        wait_for(lambda: len(done) >= mark + 20, 20, "traffic after the rotation")
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    print(
        f"\nkey rotation under traffic: {len(done)} requests ({done.count('read')} key reads, "
        f"{done.count('issue')} certificates issued), {len(failed)} failed"
    )
    assert failed == [], failed[:10]
    assert done.count("read") >= 40 and done.count("read new") >= 6, len(done)
    # every secret readable, under the new key only; derived values kept (derive=old)
    assert [k["id"] for k in retired["keys"]] == [new] and retired["unreadable"] == 0
    status = ok(api.get(f"{S}/status"))
    assert status["unreadable"] == 0 and status["keys"][0]["values"] == status["values"]
    assert status["reencryption"]["status"] == "done"
    ring = Keyring.parse((cp.home / "secret.key").read_text())
    assert ring.ids == [new] and ring.derive_id == old
    for d in DOMAINS:
        cid, pem = certs[d]
        got = ok(api.get(f"{INV}/ssl/{d}/private-key", params={"certificate_id": cid}))
        assert got["key_pem"] == pem
    # the database read with nothing but the new key: every value decrypts
    import sqlite3

    fresh = SecretBox((cp.home / "secret.key").read_text())
    conn = sqlite3.connect(cp.home / "edgeplane.db")
    try:
        values = [
            v
            for table, column in (
                ("certificates", "key_encrypted"),
                ("secrets", "value_encrypted"),
                ("domains", "dnssec_key_encrypted"),
                ("notification_channels", "secrets_encrypted"),
            )
            for (v,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
        ]
    finally:
        conn.close()
    assert len(values) == status["values"] > len(DOMAINS)
    for value in values:
        assert fresh.key_of(value) == new
        fresh.decrypt(value)
    events = ok(api.get("/api/v1/audit", params={"kind": "secret_key", "include_global": True}))
    assert {"add", "promote", "reencrypt", "retire"} <= {e["action"] for e in events["items"]}
    assert cp.stop() == 0
