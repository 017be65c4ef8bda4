"""fetch() inside edge functions: the project's own hosts go to the node's internal fetch
socket (a stand-in here) with the client's address, scheme and request id; other
destinations go out directly, private addresses refused (also behind a name or a redirect)
unless the node allows them; only http and https."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest

from edgeplane.node.functions.process import FunctionRuntime
from function_runtime_support import (
    StandIn,
    call,
    function,
    needs_runtime,
    running_runtime,
    wait_for_line,
)

pytestmark = needs_runtime

PROXY = r"""
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const target = url.searchParams.get("to");
    if (!target) return fetch(request);
    try {
      const r = await fetch(target, {
        redirect: url.searchParams.get("redirect") || "follow",
        headers: { "X-Real-IP": "6.6.6.6", "X-Edgeplane-Function": "x/y", "X-From-Function": "1" },
      });
      return Response.json({
        status: r.status, location: r.headers.get("location"), body: await r.text(),
        url: r.url, redirected: r.redirected,
      });
    } catch (error) {
      return Response.json({ error: `${error.name}: ${error.message}` });
    }
  },
};
"""


# A fetch made after an await (the continuation of the handler): still the request's own, with
# its client address and request id. "/busy/N" keeps the isolate busy N ms.
AFTER_AWAIT = r"""
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/busy/")) {
      for (const end = Date.now() + Number(path.slice(6)); Date.now() < end; );
      return new Response("busy");
    }
    await request.text();
    await new Promise((resolve) => setTimeout(resolve, 1));
    const seen = await (await fetch(`https://shop.example.com/echo${path}`)).json();
    console.log(`fetched ${path}`);
    return Response.json({ rid: seen.headers["x-edge-request-id"], ip: seen.headers["x-real-ip"] });
  },
};
"""


class _Local(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Local.hits.append(self.path)
        body = b"local server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def local_port() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1 (a private destination)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Local)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    with StandIn(str(tmp_path_factory.mktemp("fetch") / "fn-fetch.sock")) as server:
        yield server


def fetched(
    runtime: FunctionRuntime, target: str, redirect: str | None = None, **request: Any
) -> Any:
    """What f/proxy reports of its fetch of ``target``."""
    query = {"to": target, **({"redirect": redirect} if redirect else {})}
    return call(runtime, "f/proxy", "/?" + urlencode(query), **request).json()


def fetch_config(stand_in: StandIn, allow_private: bool = False) -> dict[str, Any]:
    return {
        "fetch_socket": stand_in.path,
        "geoip_db": None,
        "allow_private_fetch": allow_private,
        "functions": [function("f/proxy", PROXY), function("f/after", AFTER_AWAIT)],
    }


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory, stand_in: StandIn
) -> Iterator[FunctionRuntime]:
    with running_runtime(Path(tmp_path_factory.mktemp("fnrt-fetch"))) as rt:
        assert rt.load(fetch_config(stand_in))["functions"]["f/proxy@1"]["ok"]
        yield rt


def test_fetch_of_the_own_host_goes_to_the_internal_socket(
    runtime: FunctionRuntime, stand_in: StandIn
) -> None:
    r = call(
        runtime,
        "f/proxy",
        "/api/thing?x=1",
        method="POST",
        ip="81.2.69.142",
        rid="rid-proxy",
        headers={"X-Client": "c"},
        body=b"payload",
    )
    assert r.status_code == 200
    seen = r.json()
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/api/thing?x=1", "payload")
    headers = seen["headers"]
    assert headers["host"] == "shop.example.com"
    assert headers["x-real-ip"] == "81.2.69.142"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-edge-request-id"] == "rid-proxy"
    assert headers["x-client"] == "c"
    assert "x-edgeplane-function" not in headers
    assert stand_in.requests[-1] == seen


def test_a_function_cannot_set_the_client_address_or_route_headers(
    runtime: FunctionRuntime, stand_in: StandIn
) -> None:
    to = "http://shop.example.com/plain"
    seen = fetched(runtime, to, ip="8.8.8.8", rid="rid-spoof")
    assert seen["status"] == 200 and seen["url"] == to
    headers = stand_in.requests[-1]["headers"]
    assert headers["x-real-ip"] == "8.8.8.8"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-from-function"] == "1"
    assert "x-edgeplane-function" not in headers


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ("http://127.0.0.1:{port}/", "127.0.0.1 is a loopback"),
        ("http://localhost:{port}/", "is a loopback"),
        ("http://[::1]:{port}/", "::1 is a loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/", "is a loopback"),
        ("http://10.1.2.3/", "10.1.2.3 is a private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
        ("http://100.64.0.1/", "100.64.0.1 is a carrier-grade NAT"),
        ("http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified"),
        ("http://2130706433:{port}/", "127.0.0.1 is a loopback"),
    ],
)
def test_private_destinations_are_refused(
    runtime: FunctionRuntime, local_port: int, target: str, address: str
) -> None:
    before = len(_Local.hits)
    seen = fetched(runtime, target.format(port=local_port))
    assert seen["error"].startswith("TypeError: fetch to ")
    assert address in seen["error"] and "refused" in seen["error"]
    assert len(_Local.hits) == before


@pytest.mark.parametrize("scheme", ["file", "ftp", "data"])
def test_only_http_and_https_are_fetched(runtime: FunctionRuntime, scheme: str) -> None:
    target = {"file": "file:///etc/passwd", "ftp": "ftp://example.com/", "data": "data:,x"}
    seen = fetched(runtime, target[scheme])
    assert seen == {
        "error": f'TypeError: fetch: the "{scheme}" scheme is not supported (http and https only)'
    }


def test_redirects_are_followed_and_each_hop_is_checked(
    runtime: FunctionRuntime, stand_in: StandIn, local_port: int
) -> None:
    stand_in.routes["/old"] = (302, {"Location": "/new?y=2"}, b"moved")
    stand_in.routes["/to-private"] = (307, {"Location": f"http://127.0.0.1:{local_port}/"}, b"")
    stand_in.routes["/forever"] = (302, {"Location": "/forever"}, b"")
    followed = fetched(runtime, "https://shop.example.com/old")
    assert followed["status"] == 200 and followed["redirected"] is True
    assert followed["url"] == "https://shop.example.com/new?y=2"
    assert '"path": "/new?y=2"' in followed["body"]
    manual = fetched(runtime, "https://shop.example.com/old", redirect="manual")
    assert (manual["status"], manual["location"], manual["body"]) == (302, "/new?y=2", "moved")
    assert manual["redirected"] is False
    before = len(_Local.hits)
    refused = fetched(runtime, "https://shop.example.com/to-private")
    assert "127.0.0.1 is a loopback" in refused["error"]
    assert len(_Local.hits) == before
    looping = fetched(runtime, "https://shop.example.com/forever")
    assert looping == {"error": "TypeError: fetch: too many redirects (more than 10)"}


def test_a_node_may_allow_private_destinations(
    runtime: FunctionRuntime, stand_in: StandIn, local_port: int
) -> None:
    try:
        answer = runtime.load(fetch_config(stand_in, allow_private=True))
        assert answer["functions"]["f/proxy@1"]["kept"] is True
        seen = fetched(runtime, f"http://127.0.0.1:{local_port}/hello")
        assert (seen["status"], seen["body"]) == (200, "local server")
        assert _Local.hits[-1] == "/hello"
    finally:
        runtime.load(fetch_config(stand_in))


def test_concurrent_requests_keep_their_own_fetches_timers_and_logs(
    runtime: FunctionRuntime,
) -> None:
    """Requests to one function queued together (its isolate busy meanwhile), each awaiting
    before its timer and its fetch: every fetch carries its own request's client address and
    id, and every console line names its own request."""
    with ThreadPoolExecutor(21) as pool:
        busy = pool.submit(call, runtime, "f/after", "/busy/300")
        time.sleep(0.1)
        futures = {
            n: pool.submit(call, runtime, "f/after", f"/r{n}", ip=f"203.0.113.{n + 1}",
                           rid=f"rid-after-{n}")
            for n in range(20)
        }
        assert busy.result().text == "busy"
        answers = {n: f.result() for n, f in futures.items()}
    for n, r in answers.items():
        if r.status_code != 200:
            why = wait_for_line(runtime, rid=f"rid-after-{n}", level="error")["msg"]
            raise AssertionError(f"request {n}: {r.status_code} {r.text.strip()}: {why}")
        assert r.json() == {"rid": f"rid-after-{n}", "ip": f"203.0.113.{n + 1}"}, (n, r.json())
    for n in range(20):
        line = wait_for_line(runtime, rid=f"rid-after-{n}")
        assert line["msg"] == f"fetched /r{n}", line
