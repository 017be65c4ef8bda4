"""The scaling groups' cloud driver (``edgeplane.scaling.drivers.cloud``) against Libcloud's
in-memory ``dummy`` provider, against small stand-in driver classes (constructor arguments,
user data, error messages), and against Libcloud's real EC2 driver talking to a small EC2
Query API server of this module on a loopback port (RunInstances, DescribeInstances,
DescribeAddresses, TerminateInstances): the request path of a real provider, offline."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from libcloud.compute.types import NodeState

from edgeplane.scaling.drivers import cloud
from edgeplane.scaling.drivers.base import DriverError, InstanceSpec
from edgeplane.scaling.drivers.cloud import (
    CloudDriver,
    check_provider,
    group_prefix,
    node_name,
    resolve_ref,
    scrub,
    state_of,
)

GROUP = "default/web"
OTHER = "default/api"


def dummy_template(**extra: Any) -> dict[str, Any]:
    return {
        "provider": "dummy",
        "credentials": {"key": "env:EP_TEST_DUMMY_KEY"},
        "image": "i2",
        "size": "s1",
        "port": 8080,
        **extra,
    }


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> CloudDriver:
    monkeypatch.setenv("EP_TEST_DUMMY_KEY", "0")  # dummy: the two nodes it starts with
    return CloudDriver()


def spec(name: str, group: str = GROUP, **extra: Any) -> InstanceSpec:
    return InstanceSpec(group=group, name=name, template=dummy_template(**extra))


# --------------------------------------------------------------------------- the dummy provider


def test_create_list_get_delete(driver: CloudDriver) -> None:
    a = driver.create(spec("web-a"))
    b = driver.create(spec("web-b"))
    assert a.state == b.state == "running"
    assert a.port == 8080 and a.host.startswith("127.0.0.") and a.host != b.host
    assert a.ref and a.extra["node_name"] == node_name(GROUP, "web-a")
    assert sorted(i.name for i in driver.list(GROUP)) == ["web-a", "web-b"]
    assert driver.get(GROUP, "web-a") == a
    driver.delete(GROUP, "web-a")
    assert driver.get(GROUP, "web-a").state == "missing"
    assert [i.name for i in driver.list(GROUP)] == ["web-b"]
    driver.delete(GROUP, "web-a")  # gone already: succeeds
    assert driver.cpu_percent(GROUP, "web-b") is None


def test_list_holds_only_the_groups_nodes(driver: CloudDriver) -> None:
    driver.create(spec("web-a"))
    driver.create(spec("web-a", group=OTHER))
    driver.create(spec("api-b", group=OTHER))
    # dummy's own nodes (dummy-1, dummy-2) and the other group's are not this group's
    assert [i.name for i in driver.list(GROUP)] == ["web-a"]
    assert sorted(i.name for i in driver.list(OTHER)) == ["api-b", "web-a"]
    driver.delete(OTHER, "web-a")
    assert driver.get(GROUP, "web-a").state == "running"
    # a group the driver never made anything for has nothing
    assert driver.list("other/never") == []
    assert driver.get("other/never", "web-a").state == "missing"
    driver.delete("other/never", "web-a")


def test_create_of_an_existing_name_returns_it(driver: CloudDriver) -> None:
    first = driver.create(spec("web-a"))
    again = driver.create(spec("web-a"))
    assert again.ref == first.ref and again.host == first.host
    assert len(driver.list(GROUP)) == 1


def test_templates_kept_for_a_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EP_TEST_DUMMY_KEY", "0")
    driver = CloudDriver(state_dir=tmp_path / "cloud")
    driver.create(spec("web-a"))
    kept = tmp_path / "cloud" / "default" / "web" / "template.json"
    assert json.loads(kept.read_text())["credentials"] == {"key": "env:EP_TEST_DUMMY_KEY"}
    # a driver object made afresh over the same folder (the control plane restarted) knows
    # the group's cloud and credentials without being told
    after = CloudDriver(state_dir=tmp_path / "cloud")
    after._conns = driver._conns  # the dummy's nodes live in its connection object
    assert [i.name for i in after.list(GROUP)] == ["web-a"]
    # bind: the template as the controller has it now
    other = CloudDriver()
    other._conns = driver._conns
    assert other.list(GROUP) == []
    other.bind(GROUP, dummy_template())
    assert [i.name for i in other.list(GROUP)] == ["web-a"]
    with pytest.raises(DriverError, match="invalid cloud template"):
        other.bind(GROUP, {"provider": "dummy"})


@pytest.mark.parametrize(
    ("node_state", "state"),
    [
        (NodeState.RUNNING, "running"),
        (NodeState.PENDING, "pending"),
        (NodeState.STARTING, "pending"),
        (NodeState.REBOOTING, "pending"),
        (NodeState.UNKNOWN, "pending"),
        (NodeState.STOPPED, "exited"),
        (NodeState.STOPPING, "exited"),
        (NodeState.TERMINATED, "exited"),
        (NodeState.ERROR, "exited"),
        (NodeState.SUSPENDED, "exited"),
        (NodeState.PAUSED, "exited"),
        ("running", "running"),
    ],
)
def test_state_mapping(node_state: Any, state: str) -> None:
    assert state_of(node_state) == state


def test_node_states_reach_the_instance(driver: CloudDriver) -> None:
    driver.create(spec("web-a"))
    (conn,) = driver._conns.values()
    node = next(n for n in conn.driver.list_nodes() if n.name == node_name(GROUP, "web-a"))
    node.state = NodeState.PENDING
    assert driver.get(GROUP, "web-a").state == "pending"
    node.state = NodeState.ERROR
    got = driver.get(GROUP, "web-a")
    assert got.state == "exited" and got.detail == "cloud state: error"
    node.state = NodeState.TERMINATED  # a cloud lists a terminated node for a while
    assert driver.get(GROUP, "web-a").state == "exited"
    replaced = driver.create(spec("web-a"))  # terminated: a new node, not the old one
    assert replaced.state == "running" and replaced.ref != got.ref
    assert driver.get(GROUP, "web-a").state == "running"


def test_private_address(driver: CloudDriver) -> None:
    got = driver.create(spec("web-a", address="private"))
    assert got.host == ""  # dummy nodes have no private address


def test_node_names() -> None:
    short = node_name(GROUP, "web-a")
    assert short == group_prefix(GROUP) + "web-a" and len(group_prefix(GROUP)) == 12
    assert group_prefix(GROUP) != group_prefix(OTHER)
    long_a, long_b = node_name(GROUP, "a" * 60 + "-x"), node_name(GROUP, "a" * 60 + "-y")
    assert len(long_a) == len(long_b) == 63 and long_a != long_b
    assert long_a.startswith(group_prefix(GROUP)) and long_a.replace("-", "").isalnum()


def test_long_instance_names(driver: CloudDriver) -> None:
    name = "instance-" + "b" * 54
    assert len(name) == 63
    driver.create(spec(name))
    assert driver.get(GROUP, name).state == "running"
    driver.delete(GROUP, name)
    assert driver.get(GROUP, name).state == "missing"


def test_bad_names_and_templates(driver: CloudDriver) -> None:
    with pytest.raises(DriverError, match="invalid instance name"):
        driver.create(spec("Web_A"))
    with pytest.raises(DriverError, match="invalid cloud template: port"):
        driver.create(InstanceSpec(GROUP, "web-a", {**dummy_template(), "port": 0}))
    with pytest.raises(DriverError, match="unknown cloud provider 'nowhere'"):
        driver.create(InstanceSpec(GROUP, "web-a", {**dummy_template(), "provider": "nowhere"}))
    with pytest.raises(DriverError, match="takes no user data"):
        driver.create(spec("web-a", user_data="#!/bin/sh\necho {port}\n"))
    with pytest.raises(DriverError, match="takes no location"):
        driver.create(spec("web-a", location="London Loft"))
    with pytest.raises(DriverError, match="unexpected keyword argument 'region'"):
        driver.create(spec("web-a", options={"region": "x"}))


def test_check_provider() -> None:
    for name in ("dummy", "ec2", "gce", "azure_arm", "digital_ocean", "openstack"):
        assert check_provider(name) is None, name
    assert "unknown cloud provider 'nowhere'" in (check_provider("nowhere") or "")
    assert "lowercase" in (check_provider("EC2") or "")
    assert check_provider("../x") is not None
    assert check_provider("") is not None


# --------------------------------------------------------------------------- credentials


def test_resolve_ref_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EP_TEST_SECRET", "s3cr3t-from-env")
    assert resolve_ref("env:EP_TEST_SECRET") == "s3cr3t-from-env"
    path = tmp_path / "key"
    path.write_text("s3cr3t-from-file\n")
    assert resolve_ref(f"file:{path}") == "s3cr3t-from-file"


def test_unresolved_refs_name_the_ref_never_a_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EP_TEST_UNSET", raising=False)
    with pytest.raises(DriverError) as caught:
        resolve_ref("env:EP_TEST_UNSET")
    assert "env:EP_TEST_UNSET" in str(caught.value) and "not set" in str(caught.value)
    with pytest.raises(DriverError, match="cannot read the file"):
        resolve_ref(f"file:{tmp_path}/missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(DriverError, match="empty"):
        resolve_ref(f"file:{tmp_path}/empty")
    with pytest.raises(DriverError, match="expected env:NAME or file:/path"):
        resolve_ref("plain-secret-value")
    # through the driver: the create fails naming the reference, and the value of the other
    # credential (which did resolve) appears nowhere
    monkeypatch.setenv("EP_TEST_DUMMY_KEY", "0")
    monkeypatch.setenv("EP_TEST_OTHER", "other-secret-value")
    refs = {"key": "env:EP_TEST_OTHER", "secret": "env:EP_TEST_UNSET"}
    template = dummy_template(credentials=refs)
    with pytest.raises(DriverError) as caught:
        CloudDriver().create(InstanceSpec(GROUP, "web-a", template))
    assert "env:EP_TEST_UNSET" in str(caught.value)
    assert "other-secret-value" not in str(caught.value)


def test_refs_are_resolved_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def resolve(ref: str) -> str:
        asked.append(ref)
        return "0"

    driver = CloudDriver(resolve=resolve)
    driver.create(spec("web-a"))
    driver.list(GROUP)
    driver.get(GROUP, "web-a")
    assert asked == ["env:EP_TEST_DUMMY_KEY"] * 3
    assert len(driver._conns) == 1  # one connection for the three calls


class Recorder:
    """A stand-in Libcloud driver class: records its constructor's arguments and the
    create_node calls; its calls fail with ``fail`` (a message holding the key)."""

    instances: ClassVar[list[Recorder]] = []
    fail: str | None = None

    def __init__(self, tenant_id: str, key: str | None = None, secret: str | None = None,
                 region: str = "", **kwargs: Any) -> None:
        self.tenant_id, self.key, self.secret, self.region = tenant_id, key, secret, region
        self.kwargs = kwargs
        self.created: list[dict[str, Any]] = []
        self.connection = type("Conn", (), {"timeout": None})()
        Recorder.instances.append(self)

    def create_node(self, name: str, size: Any, image: Any, location: Any = None,
                    ex_userdata: str | None = None, ex_keyname: str | None = None) -> Any:
        if self.fail:
            raise RuntimeError(self.fail.format(first=self.tenant_id, second=self.key))
        self.created.append({"name": name, "size": size.id, "image": image.id,
                             "location": location and location.id, "ex_userdata": ex_userdata,
                             "ex_keyname": ex_keyname})
        return type("N", (), {"name": name, "id": "n-1", "state": "pending",
                              "public_ips": [], "private_ips": ["10.0.0.5"]})()

    def list_nodes(self) -> list[Any]:
        if self.fail:
            raise RuntimeError(self.fail.format(first=self.tenant_id, second=self.key))
        return []


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    Recorder.instances = []
    Recorder.fail = None
    monkeypatch.setattr(cloud, "_driver_class", lambda name: Recorder)
    monkeypatch.setenv("EP_TEST_KEY", "AKIAEXAMPLEKEY123")
    monkeypatch.setenv("EP_TEST_SECRET", "wJalrXUtnFEMI/secret/EXAMPLE")
    return Recorder


def recorded_template(**extra: Any) -> dict[str, Any]:
    return {
        "provider": "recorder",
        "credentials": {"key": "env:EP_TEST_KEY", "secret": "env:EP_TEST_SECRET"},
        "image": "ami-1",
        "size": "t3.micro",
        "port": 8000,
        "address": "private",
        **extra,
    }


def test_constructor_and_create_node_arguments(recorder: type[Recorder]) -> None:
    driver = CloudDriver()
    template = recorded_template(
        options={"region": "eu-west-1", "create_node.ex_keyname": "deploy"},
        location="eu-west-1a",
        user_data="#!/bin/sh\nexec app --port {port} --name {name} ${HOME} {other}\n",
    )
    got = driver.create(InstanceSpec(GROUP, "web-a", template))
    assert got.state == "pending" and got.host == "10.0.0.5" and got.port == 8000
    (made,) = recorder.instances
    # key and secret positionally: the constructor's first parameter (tenant_id) takes the key
    assert (made.tenant_id, made.key, made.region) == (
        "AKIAEXAMPLEKEY123", "wJalrXUtnFEMI/secret/EXAMPLE", "eu-west-1"
    )
    assert made.connection.timeout == cloud.CONNECTION_TIMEOUT_S
    assert made.created == [{
        "name": node_name(GROUP, "web-a"), "size": "t3.micro", "image": "ami-1",
        "location": "eu-west-1a", "ex_keyname": "deploy",
        "ex_userdata": "#!/bin/sh\nexec app --port 8000 --name web-a ${HOME} {other}\n",
    }]


def test_a_named_first_parameter_sends_key_and_secret_by_name(recorder: type[Recorder]) -> None:
    # Azure ARM: AzureNodeDriver(tenant_id, subscription_id, key, secret, ...)
    template = recorded_template(options={"tenant_id": "t-1", "subscription_id": "s-1"})
    CloudDriver().create(InstanceSpec(GROUP, "web-a", template))
    (made,) = recorder.instances
    assert (made.tenant_id, made.key, made.secret) == (
        "t-1", "AKIAEXAMPLEKEY123", "wJalrXUtnFEMI/secret/EXAMPLE"
    )
    assert made.kwargs == {"subscription_id": "s-1"}


def test_errors_never_hold_a_credential(recorder: type[Recorder]) -> None:
    recorder.fail = "auth failed for key {first} (secret {second}) at the endpoint"
    driver = CloudDriver()
    for call in (
        lambda: driver.create(InstanceSpec(GROUP, "web-a", recorded_template())),
        lambda: driver.list(GROUP),
    ):
        with pytest.raises(DriverError) as caught:
            call()
        message = str(caught.value)
        assert "auth failed for key [redacted] (secret [redacted])" in message
        assert "AKIAEXAMPLEKEY123" not in message and "wJalrXUtnFEMI" not in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_scrub() -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n"
        "-----END PRIVATE KEY-----"
    )
    text = scrub("bad line MIIEvQIBADANBgkqhkiG9w0B in key; token abcd1234", (pem, "abcd1234"))
    assert text == "bad line [redacted] in key; token [redacted]"
    assert len(scrub("x" * 2000, ())) == cloud.MESSAGE_LIMIT
    # a service account's JSON key file: its strings, and their lines, are scrubbed
    key_file = json.dumps({"client_email": "svc@example.iam", "private_key": pem + "\n"})
    text = scrub("key AQEFAASCBKcwggSjAgEAAoIB of svc@example.iam refused", (key_file,))
    assert text == "key [redacted] of [redacted] refused"


# --------------------------------------------------------------------------- a real driver: EC2


class FakeEC2:
    """The EC2 Query API calls Libcloud's EC2NodeDriver makes for create, list and delete."""

    NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret
        self.instances: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def signed(self, method: str, host: str, path: str, params: dict[str, str]) -> bool:
        """AWS signature version 2 (Libcloud's for EC2 in eu-west-1): an HMAC-SHA256 of the
        request with the secret key, which itself never travels."""
        query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='-_~')}"
            for k, v in sorted(params.items())
            if k != "Signature"
        )
        text = "\n".join((method, host, path, query))
        digest = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64encode(digest).decode(), params.get("Signature", ""))

    @staticmethod
    def _error(code: str, message: str) -> str:
        return (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            "</Errors><RequestID>r-1</RequestID></Response>"
        )

    def answer(self, method: str, host: str, path: str, params: dict[str, str]) -> tuple[int, str]:
        with self.lock:
            self.requests.append(params)
            key = params.get("AWSAccessKeyId", "")
            if key != self.key:  # (AWS does not echo the key; a message that does is scrubbed)
                return 401, self._error("AuthFailure", f"cannot validate the access key {key}")
            if not self.signed(method, host, path, params):
                return 403, self._error("SignatureDoesNotMatch", "the signature does not match")
            action = params.get("Action")
            if action == "RunInstances":
                iid = f"i-{len(self.instances) + 1:08x}"
                tags = {}
                for k, v in params.items():
                    if k.startswith("TagSpecification.1.Tag.") and k.endswith(".Key"):
                        tags[v] = params[k[: -len("Key")] + "Value"]
                n = len(self.instances) + 10
                self.instances[iid] = {
                    "id": iid, "state": "pending", "tags": tags, "image": params["ImageId"],
                    "type": params["InstanceType"], "ip": f"203.0.113.{n}",
                    "private": f"10.0.0.{n}",
                    "userdata": base64.b64decode(params.get("UserData", "")).decode(),
                }
                body = f"<instancesSet>{self._item(self.instances[iid])}</instancesSet>"
                body = "<reservationId>r-1</reservationId>" + body
                return 200, self._doc("RunInstancesResponse", body)
            if action == "DescribeInstances":
                items = "".join(self._item(i) for i in self.instances.values())
                body = (
                    "<reservationSet><item><reservationId>r-1</reservationId>"
                    f"<instancesSet>{items}</instancesSet></item></reservationSet>"
                )
                for inst in self.instances.values():  # machines boot between two calls
                    if inst["state"] == "pending":
                        inst["state"] = "running"
                return 200, self._doc("DescribeInstancesResponse", body)
            if action == "DescribeAddresses":
                return 200, self._doc("DescribeAddressesResponse", "<addressesSet/>")
            if action == "TerminateInstances":
                inst = self.instances[params["InstanceId.1"]]
                inst["state"] = "terminated"
                body = (
                    f"<instancesSet><item><instanceId>{inst['id']}</instanceId><currentState>"
                    "<code>32</code><name>shutting-down</name></currentState></item></instancesSet>"
                )
                return 200, self._doc("TerminateInstancesResponse", body)
            return 400, self._error("InvalidAction", str(action))

    def _doc(self, root: str, body: str) -> str:
        return f'<{root} xmlns="{self.NS}"><requestId>q-1</requestId>{body}</{root}>'

    @staticmethod
    def _item(i: dict[str, Any]) -> str:
        tags = "".join(
            f"<item><key>{k}</key><value>{v}</value></item>" for k, v in i["tags"].items()
        )
        code = {"pending": 0, "running": 16, "terminated": 48}[i["state"]]
        ip = f"<ipAddress>{i['ip']}</ipAddress>" if i["state"] == "running" else ""
        return (
            f"<item><instanceId>{i['id']}</instanceId><imageId>{i['image']}</imageId>"
            f"<instanceState><code>{code}</code><name>{i['state']}</name></instanceState>"
            f"<instanceType>{i['type']}</instanceType>"
            "<launchTime>2026-01-02T03:04:05.000Z</launchTime>"
            f"<privateIpAddress>{i['private']}</privateIpAddress>{ip}"
            f"<tagSet>{tags}</tagSet></item>"
        )


@pytest.fixture
def ec2() -> Iterator[tuple[FakeEC2, int]]:
    fake = FakeEC2(key="AKIAFAKEKEY0000001", secret="ec2-secret-access-key-value")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))
            status, text = fake.answer(self.command, self.headers["Host"], url.path, params)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def ec2_template(port: int, key_ref: str, secret_ref: str) -> dict[str, Any]:
    return {
        "provider": "ec2",
        "credentials": {"key": key_ref, "secret": secret_ref},
        "options": {"region": "eu-west-1", "host": "127.0.0.1", "port": port, "secure": False},
        "image": "ami-0123456789",
        "size": "t3.micro",
        "port": 8000,
        "user_data": "#!/bin/sh\nexec origin --port {port} --name {name}\n",
    }


def test_ec2_driver_request_path(
    ec2: tuple[FakeEC2, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake, port = ec2
    monkeypatch.setenv("EP_TEST_EC2_KEY", fake.key)
    (tmp_path / "secret").write_text(fake.secret + "\n")
    template = ec2_template(port, "env:EP_TEST_EC2_KEY", f"file:{tmp_path}/secret")
    driver = CloudDriver(state_dir=tmp_path / "state")

    made = driver.create(InstanceSpec(GROUP, "web-a", template))
    assert (made.state, made.ref, made.host) == ("pending", "i-00000001", "")
    run = next(r for r in fake.requests if r["Action"] == "RunInstances")
    assert run["ImageId"] == "ami-0123456789" and run["InstanceType"] == "t3.micro"
    inst = fake.instances["i-00000001"]
    assert inst["tags"] == {"Name": node_name(GROUP, "web-a")}
    assert inst["userdata"] == "#!/bin/sh\nexec origin --port 8000 --name web-a\n"
    # every request carried the key and was signed with the secret (the fake checks both)
    assert all(r["AWSAccessKeyId"] == fake.key for r in fake.requests)
    assert not any(fake.secret in str(r) for r in fake.requests)

    driver.create(InstanceSpec(OTHER, "web-a", template))
    (listed,) = driver.list(GROUP)  # the other group's node is not this group's
    assert (listed.name, listed.state, listed.host, listed.port) == (
        "web-a", "running", "203.0.113.10", 8000
    )
    assert listed.started_at is not None and listed.started_at.year == 2026
    assert driver.create(InstanceSpec(GROUP, "web-a", template)).ref == "i-00000001"
    assert sum(r["Action"] == "RunInstances" for r in fake.requests) == 2
    # the control plane restarted: a new driver object, a new connection, the same machines
    after = CloudDriver(state_dir=tmp_path / "state")
    assert [(i.name, i.ref) for i in after.list(GROUP)] == [("web-a", "i-00000001")]

    driver.delete(GROUP, "web-a")
    assert fake.instances["i-00000001"]["state"] == "terminated"
    assert fake.instances["i-00000002"]["state"] == "running"
    gone = driver.get(GROUP, "web-a")  # EC2 lists a terminated instance for a while
    assert (gone.state, gone.detail) == ("exited", "cloud state: terminated")
    terminations = sum(r["Action"] == "TerminateInstances" for r in fake.requests)
    driver.delete(GROUP, "web-a")  # already terminated: nothing to do
    assert sum(r["Action"] == "TerminateInstances" for r in fake.requests) == terminations


def test_ec2_auth_failure_is_scrubbed(
    ec2: tuple[FakeEC2, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, port = ec2
    monkeypatch.setenv("EP_TEST_EC2_KEY", "AKIAWRONGKEY999999")
    monkeypatch.setenv("EP_TEST_EC2_SECRET", "another-secret-value")
    template = ec2_template(port, "env:EP_TEST_EC2_KEY", "env:EP_TEST_EC2_SECRET")
    with pytest.raises(DriverError) as caught:
        CloudDriver().create(InstanceSpec(GROUP, "web-a", template))
    message = str(caught.value)
    assert fake.requests, "the request reached the server"
    assert "cloud provider ec2" in message
    assert "cannot validate the access key [redacted]" in message
    assert "AKIAWRONGKEY999999" not in message and "another-secret-value" not in message
    # the right key with a wrong secret: refused by the signature
    monkeypatch.setenv("EP_TEST_EC2_KEY", fake.key)
    with pytest.raises(DriverError, match="SignatureDoesNotMatch"):
        CloudDriver().create(InstanceSpec(GROUP, "web-a", template))
    assert not fake.instances
