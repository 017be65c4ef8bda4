"""The edge functions runtime (``node/functions/runtime``), a real process driven as the agent
and nginx will: answers, the platform inside the isolates, isolation between functions,
the limits (time, memory, body size), the console log, config loads and SIGTERM."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeplane.node.functions.process import FunctionRuntime
from function_runtime_support import (
    RUNTIME,
    call,
    console_lines,
    function,
    geoip_db,
    needs_runtime,
    running_runtime,
    wait_for_line,
)

pytestmark = [needs_runtime, pytest.mark.serial]  # limits measured in time

HELLO = r"""
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    return new Response(`hello ${url.pathname}`, {
      status: 201,
      headers: {
        "X-Seen": JSON.stringify({
          url: request.url, method: request.method, ip: request.ip, geo: request.geo,
          headers: [...request.headers], body: await request.text(),
        }),
      },
    });
  },
};
"""

ENV = r"""
const secretsOnGlobal = () => Object.getOwnPropertyNames(globalThis).filter((name) => {
  try { return String(globalThis[name]).includes("topsecret"); } catch { return false; }
});
export default {
  fetch(request, env) {
    return Response.json({ env, onGlobal: secretsOnGlobal(), envGlobal: typeof globalThis.env });
  },
};
"""

SPY = r"""
export default {
  fetch(request, env) {
    const names = Object.getOwnPropertyNames(globalThis);
    const leaked = names.filter((name) => {
      try {
        return JSON.stringify(globalThis[name] ?? null).includes("topsecret");
      } catch {
        return false;
      }
    });
    return Response.json({ env, leaked, hasEnvGlobal: typeof globalThis.env !== "undefined" });
  },
};
"""

NODE_APIS = r"""
export default {
  async fetch() {
    let imported;
    try {
      await import("node:fs");
      imported = "imported";
    } catch (error) {
      imported = String(error);
    }
    let evalRequire;
    try { evalRequire = typeof (0, eval)("require"); } catch (error) { evalRequire = error.name; }
    return Response.json({
      require: typeof require, process: typeof process, module: typeof module,
      Buffer: typeof Buffer, global: typeof global, evalRequire, imported,
      atomicsWait: typeof Atomics.wait,
    });
  },
};
"""

LOOP = r"""
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/loop") { for (;;) {} }
    if (path === "/after-await") {
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (;;) {}
    }
    return new Response("still here");
  },
};
"""

FAST = 'export default { fetch() { return new Response("fast"); } };'

FLOOD = 'export default { fetch() { for (;;) console.log("again", { n: 1 }); } };'

MEMORY = r"""
export default {
  fetch(request) {
    if (new URL(request.url).pathname === "/blow") {
      const hoard = [];
      for (;;) hoard.push(new Array(100000).fill(1.5));
    }
    return new Response("fine");
  },
};
"""

THROW = r"""
export default {
  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/not-a-response") return { status: 200 };
    console.log("about to fail", { path });
    throw new Error(`boom at ${path}`);
  },
};
"""

MIX = r"""
export default {
  async fetch(request) {
    const [, kind, n] = new URL(request.url).pathname.split("/");
    if (kind === "busy") for (const end = Date.now() + Number(n); Date.now() < end; );
    if (kind === "throw") throw new Error(`boom ${n}`);
    if (kind === "slow") await new Promise((resolve) => setTimeout(resolve, (Number(n) % 5) * 10));
    return new Response(`${kind} ${n}`);
  },
};
"""

LOGS = r"""
export default {
  fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    for (let i = 0; i < n; i++) console.info("line", i);
    console.warn("object", { a: [1, "two"], b: null }, 3, "str");
    return new Response("logged");
  },
};
"""

RESPONSES = r"""
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/json") {
      return Response.json({ hello: "world", n: [1, 2] }, { status: 202, headers: { "X-A": "b" } });
    }
    if (path === "/json-typed") {
      return Response.json([1], { headers: { "content-type": "application/vnd.x+json" } });
    }
    if (path === "/redirect") {
      return Response.redirect("https://shop.example.com/elsewhere?x=1", 301);
    }
    if (path === "/redirect-default") return Response.redirect("https://shop.example.com/");
    if (path === "/cookies") {
      const h = new Headers({ "Content-Type": "text/plain" });
      h.append("Set-Cookie", "a=1; Path=/");
      h.append("set-cookie", "b=2; HttpOnly");
      h.append("X-Multi", "one");
      h.append("x-multi", "two");
      return new Response("cookies", { headers: h });
    }
    if (path === "/bytes") {
      const headers = { "content-type": "application/octet-stream" };
      return new Response(new Uint8Array([0, 1, 2, 255]), { headers });
    }
    if (path === "/empty") return new Response(null, { status: 204 });
    if (path === "/echo") {
      const copy = request.clone();
      const json = await request.json();
      return Response.json({ json, again: await copy.text(), used: request.bodyUsed });
    }
    return new Response("no such path", { status: 404 });
  },
};
"""

PLATFORM = r"""
const checks = {};
function check(name, fn) {
  try {
    checks[name] = fn();
  } catch (error) {
    checks[name] = `threw ${error.name}: ${error.message}`;
  }
}
export default {
  async fetch() {
    check("resolve", () => new URL("/a/../b?x=1#h", "https://Example.COM:443/c").href);
    check("idn", () => new URL("https://bücher.example/").hostname);
    check("params-live", () => {
      const u = new URL("https://a.example/p?x=1");
      u.searchParams.append("y", "a b&c");
      u.searchParams.set("x", "é");
      return u.search + " " + u.href;
    });
    check("search-set", () => {
      const u = new URL("https://a.example/p?x=1");
      const p = u.searchParams;
      u.search = "?k=v&k=w";
      return p.getAll("k").join(",");
    });
    check("pathname-set", () => {
      const u = new URL("https://a.example/");
      u.pathname = "/é d";
      return u.href;
    });
    check("params", () => {
      const p = new URLSearchParams("?a=1&a=2&b=%20x+y&c=%ZZ");
      p.sort();
      const parts = [p.getAll("a").join(","), p.get("b"), p.get("c"), p.has("a", "2")];
      return [...parts, p.size, p.toString()].join("|");
    });
    check("params-init", () => new URLSearchParams({ q: "1+1=2", r: "~!'()*" }).toString());
    check("invalid", () => { new URL("not a url"); return "parsed"; });
    check("canParse", () => [URL.canParse("https://x/"), URL.canParse("nope"), URL.canParse("/p", "https://x/")].join(","));
    check("headers", () => {
      const h = new Headers([["B", "2"], ["a", "1"], ["A", "3"]]);
      h.delete("b");
      return JSON.stringify([...h]) + " " + h.get("A") + " " + h.has("B");
    });
    check("text", () => {
      const bytes = new TextEncoder().encode("héllo 👋");
      const back = new TextDecoder().decode(bytes);
      const bad = new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62]));
      return [bytes.length, back, bad].join("|");
    });
    check("base64", () => {
      let refused;
      try {
        btoa("é€");
      } catch (error) {
        refused = error.name;
      }
      return [btoa("hello"), atob("aGVsbG8="), refused].join("|");
    });
    check("uuid", () => {
      const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
      return uuid.test(crypto.randomUUID());
    });
    check("random", () => crypto.getRandomValues(new Uint8Array(32)).some((b) => b !== 0));
    check("clone", () => {
      const a = { d: new Date(0), m: new Map([[1, { x: 1 }]]), list: [1, 2] };
      a.self = a;
      const b = structuredClone(a);
      return [b !== a, b.self === b, b.d.getTime(), b.m.get(1).x, b.list.length].join(",");
    });
    checks.timer = await new Promise((resolve) => {
      const t0 = Date.now();
      const never = setTimeout(() => resolve("cleared timer fired"), 5);
      clearTimeout(never);
      setTimeout((v) => resolve(`${v} after ${Date.now() - t0 >= 15}`), 20, "fired");
    });
    return Response.json(checks);
  },
};
"""

WAIT = r"""
export default {
  fetch(request, env, ctx) {
    const later = new Promise((resolve) => setTimeout(resolve, 100));
    ctx.waitUntil(later.then(() => console.log("after the answer")));
    return new Response("answered");
  },
};
"""

SLOW = r"""
export default {
  async fetch() {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return new Response("slow but done");
  },
};
"""


def config(*functions: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "fetch_socket": None,
        "geoip_db": geoip_db(),
        "allow_private_fetch": False,
        "functions": list(functions),
        **settings,
    }


BASE = [
    function("t/hello", HELLO),
    function("t/env", ENV, env={"COLOUR": "blue"}, secrets={"TOKEN": "topsecret-123"}),
    function("t/spy", SPY),
    function("t/apis", NODE_APIS),
    function("t/loop", LOOP, timeout_ms=300),
    function("t/fast", FAST),
    function("t/mem", MEMORY, memory_mb=16, timeout_ms=5000),
    function("t/throw", THROW),
    function("t/logs", LOGS),
    function("t/resp", RESPONSES),
    function("t/platform", PLATFORM),
    function("t/wait", WAIT),
    function("t/flood", FLOOD, timeout_ms=300),
    function("t/mix", MIX),
]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionRuntime]:
    with running_runtime(tmp_path_factory.mktemp("fnrt")) as rt:
        answer = rt.load(config(*BASE))
        assert {k: v["ok"] for k, v in answer["functions"].items()} == {
            f["id"]: True for f in BASE
        }, answer
        yield rt


def test_a_handler_answers_with_the_clients_request(runtime: FunctionRuntime) -> None:
    r = call(
        runtime,
        "t/hello",
        "/some/path?q=%C3%A9",
        method="POST",
        ip="81.2.69.142",
        rid="rid-hello-1",
        headers={"X-Client": "yes", "X-Edgeplane-Other": "hidden"},
        body=b"payload",
    )
    assert r.status_code == 201
    assert r.text == "hello /some/path"
    assert r.headers["x-edgeplane-function-outcome"] == "ok"
    assert r.headers["x-edge-function"] == "hello@1"
    assert r.headers["content-type"] == "text/plain;charset=UTF-8"
    seen = json.loads(r.headers["x-seen"])
    assert seen["url"] == "https://shop.example.com/some/path?q=%C3%A9"
    assert seen["method"] == "POST"
    assert seen["body"] == "payload"
    assert seen["ip"] == "81.2.69.142"
    assert seen["geo"]["country"] == "GB"
    assert seen["geo"]["continent"] == "EU"
    assert isinstance(seen["geo"]["latitude"], float)
    names = {name for name, _ in seen["headers"]}
    assert "x-client" in names and "host" in names
    hidden = {"x-real-ip", "x-forwarded-proto", "x-edge-request-id", "x-edgeplane-function"}
    assert not names & (hidden | {"x-edgeplane-other"})


@pytest.mark.parametrize(
    ("ip", "country"), [("8.8.8.8", "US"), ("1.1.1.1", "AU"), ("10.0.0.1", None), (None, None)]
)
def test_request_geo_comes_from_the_client_address(
    runtime: FunctionRuntime, ip: str | None, country: str | None
) -> None:
    r = call(runtime, "t/hello", "/", ip=ip, proto="http")
    seen = json.loads(r.headers["x-seen"])
    assert seen["url"] == "http://shop.example.com/"
    assert seen["ip"] == ip
    assert seen["geo"]["country"] == country
    if country is None:
        assert set(seen["geo"].values()) == {None}


def test_env_and_secrets_reach_only_their_own_function(runtime: FunctionRuntime) -> None:
    own = call(runtime, "t/env").json()
    assert own == {
        "env": {"COLOUR": "blue", "TOKEN": "topsecret-123"},
        "onGlobal": [],
        "envGlobal": "undefined",
    }
    spy = call(runtime, "t/spy").json()
    assert spy == {"env": {}, "leaked": [], "hasEnvGlobal": False}


def test_node_apis_and_imports_are_not_there(runtime: FunctionRuntime) -> None:
    seen = call(runtime, "t/apis").json()
    assert seen["require"] == seen["process"] == seen["module"] == "undefined"
    assert seen["Buffer"] == seen["global"] == "undefined"
    assert seen["evalRequire"] == "ReferenceError"
    assert seen["imported"].startswith("Error") and seen["imported"] != "imported"
    assert seen["atomicsWait"] == "undefined"
    answer = runtime.load(
        config(*BASE, function("t/imports", 'import fs from "node:fs";\nexport default {};'))
    )
    refused = answer["functions"]["t/imports@1"]
    assert refused == {"ok": False, "error": 'imports are not supported (import "node:fs") at 1:16'}
    assert call(runtime, "t/imports").headers["x-edgeplane-function-outcome"] == "unavailable"


def test_a_loop_is_stopped_at_its_time_limit_without_delaying_other_functions(
    runtime: FunctionRuntime,
) -> None:
    results: dict[str, tuple[httpx.Response, float]] = {}

    def timed(name: str, key: str, path: str) -> None:
        started = time.monotonic()
        r = call(runtime, key, path)
        results[name] = (r, time.monotonic() - started)

    loop = threading.Thread(target=timed, args=("loop", "t/loop", "/loop"))
    loop.start()
    time.sleep(0.05)
    timed("fast", "t/fast", "/")  # while the loop runs
    assert loop.is_alive()
    loop.join()
    fast, fast_s = results["fast"]
    assert fast.status_code == 200 and fast.text == "fast"
    assert fast_s < 0.25  # well before the loop's 300 ms (a loaded machine adds some)
    stopped, stopped_s = results["loop"]
    assert stopped.status_code == 503
    assert stopped.headers["x-edgeplane-function-outcome"] == "timeout"
    assert stopped.headers["x-edge-function"] == "loop@1"
    assert 0.29 < stopped_s < 1.3
    again = call(runtime, "t/loop", "/ok")
    assert (again.status_code, again.text) == (200, "still here")


def test_a_loop_after_an_await_is_stopped_too(runtime: FunctionRuntime) -> None:
    started = time.monotonic()
    r = call(runtime, "t/loop", "/after-await", rid="rid-after-await")
    assert r.status_code == 503
    assert r.headers["x-edgeplane-function-outcome"] == "timeout"
    assert "rid-after-await" in r.text and "timeout" in r.text
    assert time.monotonic() - started < 1.3
    wait_for_line(runtime, rid="rid-after-await", level="error")
    assert call(runtime, "t/loop", "/ok").text == "still here"


def test_a_memory_blow_up_answers_503_and_the_next_request_is_served(
    runtime: FunctionRuntime,
) -> None:
    r = call(runtime, "t/mem", "/blow", rid="rid-memory")
    assert r.status_code == 503
    assert r.headers["x-edgeplane-function-outcome"] == "memory"
    assert "rid-memory" in r.text
    line = wait_for_line(runtime, rid="rid-memory")
    assert line["level"] == "error" and "memory" in line["msg"]
    again = call(runtime, "t/mem", "/")
    assert (again.status_code, again.text) == (200, "fine")


def test_an_exception_answers_500_and_is_logged_with_its_stack(runtime: FunctionRuntime) -> None:
    r = call(runtime, "t/throw", "/x", rid="rid-throw")
    assert r.status_code == 500
    assert r.headers["x-edgeplane-function-outcome"] == "exception"
    assert r.headers["content-type"].startswith("text/plain")
    assert "rid-throw" in r.text and "boom" not in r.text  # the body names no code
    logged = wait_for_line(runtime, rid="rid-throw", level="error")
    assert logged["msg"].startswith("Uncaught Error: boom at /x\n    at Object.fetch (worker.js:")
    assert "prelude" not in logged["msg"] and "file://" not in logged["msg"]
    r = call(runtime, "t/throw", "/not-a-response", rid="rid-not-a-response")
    assert r.headers["x-edgeplane-function-outcome"] == "exception"
    logged = wait_for_line(runtime, rid="rid-not-a-response")
    assert "must return a Response" in logged["msg"]


def test_requests_arriving_together_each_get_their_own_answer(runtime: FunctionRuntime) -> None:
    """Requests to one function that reach the runtime while its isolate is busy wait for it
    together: each still gets its own answer (in whatever order they are made), and one that
    throws answers 500 alone."""
    paths = [f"/{('fast', 'slow', 'throw')[n % 3]}/{n}" for n in range(90)]

    def one(path: str) -> tuple[str, int, str]:
        r = call(runtime, "t/mix", path)
        return path, r.status_code, r.text

    with ThreadPoolExecutor(31) as pool:
        busy = pool.submit(one, "/busy/400")
        time.sleep(0.1)  # the isolate is busy: the others queue in the runtime meanwhile
        got = list(pool.map(one, paths))
        assert busy.result() == ("/busy/400", 200, "busy 400")
    for path, status, text in got:
        kind, n = path.split("/")[1:]
        if kind == "throw":
            assert status == 500 and text.startswith("500 exception:"), (path, status, text)
        else:
            assert (status, text) == (200, f"{kind} {n}"), (path, status, text)


def test_console_lines_go_to_the_log_with_function_version_and_request(
    runtime: FunctionRuntime,
) -> None:
    assert call(runtime, "t/logs", "/?n=2", rid="rid-logs").text == "logged"
    warn = wait_for_line(runtime, rid="rid-logs", level="warn")
    assert warn["fn"] == "t/logs" and warn["v"] == 1
    assert warn["msg"] == 'object { a: [ 1, "two" ], b: null } 3 str'
    assert warn["t"].endswith("Z") and len(warn["t"]) == 24  # ISO with milliseconds
    lines = console_lines(runtime)
    infos = [x["msg"] for x in lines if x["rid"] == "rid-logs" and x["level"] == "info"]
    assert infos == ["line 0", "line 1"]


def test_console_lines_are_capped_at_100_a_second(runtime: FunctionRuntime) -> None:
    time.sleep(1.0)  # a second of its own for t/logs
    call(runtime, "t/logs", "/?n=250", rid="rid-flood")
    note = wait_for_line(runtime, lambda line: line["msg"].endswith("lines dropped"), fn="t/logs")
    written = [line for line in console_lines(runtime) if line["rid"] == "rid-flood"]
    assert len(written) == 100
    assert note["msg"] == "151 console lines dropped"  # 250 lines and the warn line, less 100


def test_a_console_flood_is_dropped_in_its_isolate_and_delays_nobody(
    runtime: FunctionRuntime,
) -> None:
    answers: list[httpx.Response] = []
    flood = threading.Thread(
        target=lambda: answers.append(call(runtime, "t/flood", rid="rid-flood-loop"))
    )
    flood.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert call(runtime, "t/fast").text == "fast"
    assert time.monotonic() - started < 0.25
    assert flood.is_alive()
    flood.join()
    assert answers[0].headers["x-edgeplane-function-outcome"] == "timeout"
    wait_for_line(runtime, rid="rid-flood-loop", level="error")  # the limit's line is kept
    note = wait_for_line(runtime, lambda line: line["msg"].endswith("lines dropped"), fn="t/flood")
    assert int(note["msg"].split()[0]) > 1000
    written = [line for line in console_lines(runtime) if line["rid"] == "rid-flood-loop"]
    assert len(written) == 101  # 100 lines and the time limit's


def test_responses_json_redirects_cookies_and_bodies(runtime: FunctionRuntime) -> None:
    r = call(runtime, "t/resp", "/json")
    assert (r.status_code, r.json(), r.headers["x-a"]) == (
        202,
        {"hello": "world", "n": [1, 2]},
        "b",
    )
    assert r.headers["content-type"] == "application/json"
    r = call(runtime, "t/resp", "/json-typed")
    assert (r.json(), r.headers["content-type"]) == ([1], "application/vnd.x+json")
    r = call(runtime, "t/resp", "/redirect")
    assert (r.status_code, r.headers["location"]) == (301, "https://shop.example.com/elsewhere?x=1")
    assert call(runtime, "t/resp", "/redirect-default").status_code == 302
    r = call(runtime, "t/resp", "/cookies")
    assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert r.headers["x-multi"] == "one, two"
    assert call(runtime, "t/resp", "/bytes").content == bytes([0, 1, 2, 255])
    r = call(runtime, "t/resp", "/empty")
    assert (r.status_code, r.content) == (204, b"")
    r = call(runtime, "t/resp", "/echo", method="POST", body=b'{"a": 1}')
    assert r.json() == {"json": {"a": 1}, "again": '{"a": 1}', "used": True}


def test_the_platform_inside_the_isolate(runtime: FunctionRuntime) -> None:
    checks = call(runtime, "t/platform").json()
    assert checks == {
        "resolve": "https://example.com/b?x=1#h",
        "idn": "xn--bcher-kva.example",
        "params-live": "?x=%C3%A9&y=a+b%26c https://a.example/p?x=%C3%A9&y=a+b%26c",
        "search-set": "v,w",
        "pathname-set": "https://a.example/%C3%A9%20d",
        "params": "1,2| x y|%ZZ|true|4|a=1&a=2&b=+x+y&c=%25ZZ",
        "params-init": "q=1%2B1%3D2&r=%7E%21%27%28%29*",
        "invalid": "threw TypeError: Invalid URL: not a url",
        "canParse": "true,false,true",
        "headers": '[["a","1, 3"]] 1, 3 false',
        "text": "11|héllo 👋|a\ufffdb",
        "base64": "aGVsbG8=|hello|InvalidCharacterError",
        "uuid": True,
        "random": True,
        "clone": "true,true,0,1,2",
        "timer": "fired after true",
    }


def test_wait_until_work_runs_after_the_answer(runtime: FunctionRuntime) -> None:
    started = time.monotonic()
    r = call(runtime, "t/wait", rid="rid-wait")
    assert r.text == "answered" and time.monotonic() - started < 0.09
    line = wait_for_line(runtime, rid="rid-wait")
    assert line["msg"] == "after the answer"


def test_a_body_over_1_mib_is_refused_without_invoking(runtime: FunctionRuntime) -> None:
    before = runtime.status()["functions"]["t/fast@1"]["invocations"]
    r = call(runtime, "t/fast", method="POST", body=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413
    assert runtime.status()["functions"]["t/fast@1"]["invocations"] == before
    assert call(runtime, "t/fast", method="POST", body=b"x" * (1024 * 1024)).text == "fast"


def test_an_unknown_function_is_unavailable(runtime: FunctionRuntime) -> None:
    r = call(runtime, "t/nothing", rid="rid-none")
    assert r.status_code == 503
    assert r.headers["x-edgeplane-function-outcome"] == "unavailable"
    assert "x-edge-function" not in r.headers
    assert "rid-none" in r.text


def test_a_syntax_error_keeps_the_previous_version_serving(runtime: FunctionRuntime) -> None:
    broken = function("t/fast", "export default {\n  fetch() { return 1 +; }\n}\n", version=2)
    others = [f for f in BASE if f["key"] != "t/fast"]
    answer = runtime.load(config(*others, broken))
    assert answer["functions"]["t/fast@2"] == {
        "ok": False,
        "error": "SyntaxError: Unexpected token ';' at 2:23",
    }
    assert answer["functions"]["t/hello@1"]["kept"] is True
    r = call(runtime, "t/fast")
    assert (r.text, r.headers["x-edge-function"]) == ("fast", "fast@1")
    fixed = function(
        "t/fast", 'export default { fetch() { return new Response("v2"); } };', version=2
    )
    answer = runtime.load(config(*others, fixed))
    assert answer["functions"]["t/fast@2"]["ok"] is True
    assert answer["functions"]["t/fast@2"]["cold_ms"] > 0
    r = call(runtime, "t/fast")
    assert (r.text, r.headers["x-edge-function"]) == ("v2", "fast@2")
    status = runtime.status()
    assert "t/fast@1" not in status["functions"]
    assert status["functions"]["t/hello@1"]["heap_bytes"] > 0
    assert status["rss"] > 0


def test_the_console_log_is_reopened_after_a_rotation(runtime: FunctionRuntime) -> None:
    rotated = runtime.console_log.with_name("functions.json.1")
    runtime.console_log.rename(rotated)
    runtime.reopen()
    call(runtime, "t/logs", "/?n=0", rid="rid-after-rotation")
    wait_for_line(runtime, rid="rid-after-rotation")
    assert "rid-after-rotation" not in rotated.read_text()


def test_a_dead_runtime_is_restarted_with_its_last_config(tmp_path: Path) -> None:
    with running_runtime(tmp_path) as rt:
        rt.load(config(function("t/fast", FAST)))
        assert rt.config_path is not None and rt.config_path.stat().st_mode & 0o777 == 0o600
        assert rt.ensure_running() is False
        assert rt._child is not None
        rt._child.kill()
        rt._child.wait()
        assert not rt.alive()
        assert rt.ensure_running() is True
        assert call(rt, "t/fast").text == "fast"


def test_sigterm_lets_requests_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    with running_runtime(tmp_path) as rt:
        rt.load(config(function("t/slow", SLOW)))
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(call(rt, "t/slow")))
        request.start()
        time.sleep(0.1)
        assert rt.stop() == 0
        request.join()
        assert answers[0].text == "slow but done"


def _connects_as(user: str, path: str) -> bool:
    """Whether ``user`` (with its own group alone) may connect to the unix socket ``path``."""
    entry = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:  # the child: become the user, try, and say how it went by the exit status
        code = 2
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            code = 0
        except PermissionError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) in (0, 1), f"the probe as {user} failed otherwise"
    return os.WEXITSTATUS(status) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="changing users needs root")
def test_only_nginx_workers_group_may_call_functions(tmp_path: Path) -> None:
    """The listen socket takes requests with the client's address and the function's name in
    headers: a local user who could connect could forge both."""
    worker = pwd.getpwnam("www-data")
    home = Path(tempfile.mkdtemp())  # in the run's root, which other users may traverse (0755)
    home.chmod(0o711)  # as a node's prefix
    rt = FunctionRuntime(
        home / "prefix",
        home / "logs" / "functions.json",
        runtime=RUNTIME,
        socket_group=worker.pw_gid,
    )
    rt.start()
    try:
        (home / "prefix").chmod(0o711)
        st = os.stat(rt.listen_socket)
        assert (st.st_mode & 0o777, st.st_gid) == (0o660, worker.pw_gid)
        assert os.stat(rt.admin_socket).st_mode & 0o777 == 0o600
        assert _connects_as("www-data", rt.listen_socket)
        assert not _connects_as("nobody", rt.listen_socket)
        assert not _connects_as("www-data", rt.admin_socket)
    finally:
        rt.stop()
        shutil.rmtree(home)
    with running_runtime(tmp_path / "alone") as alone:  # no group: the agent's user alone
        assert os.stat(alone.listen_socket).st_mode & 0o777 == 0o600
