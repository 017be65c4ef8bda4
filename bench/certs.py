"""Certificates, measured: from the API call to every edge node serving the new certificate.

Run from the repository root::

    .venv/bin/python bench/certs.py [--rounds 5] [--markdown]

What runs: Pebble (the ACME test CA, Debian ``pebble``) validating HTTP-01 on the edge's HTTP
port and resolving names through an edge node's DNS; ``edgeplane up --no-edge`` (the control
plane, SQLite) pointed at it (``EDGEPLANE_ACME_DIRECTORY``, ``EDGEPLANE_ACME_CA_BUNDLE``); two
edge nodes (``edgeplane edge``: nginx and PowerDNS each) in eu-central and us-east on 127.0.0.2
and .3, as ``tests/integration/test_certificates.py`` runs them.

Timed, ``--rounds`` times with a fresh domain each (``b1.test``, ``b2.test``... added through the
API and in sync on both nodes before the clock starts): ``POST /api/v1/infrastructure/ssl/{domain}``
with ``{"type": "lets_encrypt"}`` (HTTP-01 for the domain and ``www.``) until EVERY node serves
the new certificate: each node polled in its own thread with a TLS handshake (SNI) every ~5 ms,
the leaf's SHA-256 fingerprint compared with the one in the API answer. The same threads watch
each node's ``acme-challenge/`` folder, so the time until both nodes serve the HTTP-01 answers
is known too, and the nodes' own apply times are read from ``GET /api/v1/edge/nodes``.

The reference is certbot (PyPI ``certbot``, in the virtualenv) issuing from a SECOND Pebble in
standalone mode: ``certbot certonly --standalone`` for ``c1.test`` and ``www.c1.test``, its
HTTP-01 server on 127.0.0.5 (the names have A records to 127.0.0.5 in Edgeplane's DNS, which
that Pebble asks), the whole command timed from process start to exit. A second reference
separates the ACME round trips: Edgeplane's own ACME client (``edgeplane.certificates.acme.client``)
in this process against that same second Pebble, with a standalone HTTP-01 responder on
127.0.0.5 (no edge). Rounds are interleaved; the first round of each is an untimed warm-up that
also registers each client's ACME account.

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. All traffic stays on 127.0.0.0/8. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/ holds dns.py: as a script, this folder comes first on sys.path and would hide
# dnspython's ``dns`` package from every ``import dns...`` (ours and edgeplane's). Drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402

ROOT = _HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.append(str(_HERE))  # after dnspython is imported: for common.py

from common import BenchRun, Cleanup, log, signals_raise, table  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from edge_agents import Api, EdgeAgent, new_agent, wait_for  # noqa: E402
from pebble import Pebble, running_pebble  # noqa: E402
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up  # noqa: E402

INV = "/api/v1/infrastructure"
NODES = {"eu": ("eu-central", "127.0.0.2"), "us": ("us-east", "127.0.0.3")}
STANDALONE = "127.0.0.5"  # where certbot's (and the client reference's) HTTP-01 server listens
POLL_S = 0.005
ROUND_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- processes


def free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def certbot_binary() -> str | None:
    here = Path(sys.executable).parent / "certbot"
    return str(here) if here.exists() else shutil.which("certbot")


# --------------------------------------------------------------------------- measuring


def resolves(server: str, port: int, name: str) -> list[str]:
    try:
        msg = dns.query.udp(dns.message.make_query(name, "A"), server, port=port, timeout=1)
    except (dns.exception.DNSException, OSError):
        return []
    return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)


def leaf_fingerprint(ctx: ssl.SSLContext, address: str, port: int, name: str) -> str | None:
    """SHA-256 of the leaf the node serves for SNI ``name`` (no verification: compared)."""
    try:
        with (
            socket.create_connection((address, port), timeout=2) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        return None
    if der is None:
        return None
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()


def verified_handshake(roots: str, address: str, port: int, name: str) -> str:
    """The TLS version when the node's chain for ``name`` verifies against Pebble's roots."""
    ctx = ssl.create_default_context(cadata=roots)
    try:
        with (
            socket.create_connection((address, port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            return str(tls.version())
    except (ssl.SSLError, OSError) as exc:
        return f"failed: {exc!r}"


@dataclass
class NodeWatch:
    """One thread per node: a TLS handshake every ~5 ms, and the node's HTTP-01 files."""

    key: str
    address: str
    https_port: int
    acme_dir: Path
    name: str
    t0: float
    target: str | None = None
    fingerprints: dict[str, float] = field(default_factory=dict)  # fp -> first seen (s)
    challenges: dict[str, float] = field(default_factory=dict)  # token -> first seen (s)
    gone: dict[str, float] = field(default_factory=dict)  # token -> first time missing again
    handshakes: int = 0
    error: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            while not stop.is_set():
                fp = leaf_fingerprint(ctx, self.address, self.https_port, self.name)
                self.handshakes += 1
                if fp is not None and fp not in self.fingerprints:
                    self.fingerprints[fp] = time.perf_counter() - self.t0
                if self.target is not None and self.target in self.fingerprints:
                    return
                if time.perf_counter() - self.t0 > ROUND_TIMEOUT_S:
                    return
                time.sleep(POLL_S)
        except BaseException as exc:  # reported by the round
            self.error = exc

    def files(self) -> set[str]:
        try:
            return {f for f in os.listdir(self.acme_dir) if not f.startswith(".")}
        except OSError:
            return set()


def watch_challenges(watches: list[NodeWatch], stop: threading.Event) -> None:
    """Every 2 ms: when each node's HTTP-01 answer files appear and disappear again."""
    before = {w.key: w.files() for w in watches}
    while not stop.is_set():
        for w in watches:
            now = time.perf_counter() - w.t0
            files = w.files()
            for f in files - before[w.key]:
                w.challenges.setdefault(f, now)
            for f in set(w.challenges) - files:
                w.gone.setdefault(f, now)
        time.sleep(0.002)


@dataclass
class EdgeRound:
    api_s: float
    every_s: float
    first_s: float
    per_node_s: dict[str, float]
    challenges_s: float | None  # until every node had every HTTP-01 answer in place
    gone_s: float | None  # until every node had removed them again (the order is done)
    apply_ms: list[float]
    propagation_ms: list[float]
    handshakes: int


class CertificateStack:
    def __init__(self, tmp: Path, cleanup: Cleanup) -> None:
        self.tmp = tmp
        self.cleanup = cleanup
        self.exits = contextlib.ExitStack()
        cleanup.add(self.exits.close)
        self.http_port, self.https_port = free_port(), free_port()
        self.dns_ports = {k: free_udp_port(addr) for k, (_r, addr) in NODES.items()}
        self.dns_server = (NODES["eu"][1], self.dns_ports["eu"])
        self.certbot_port = free_port_on(STANDALONE)
        self.cp: ControlPlane | None = None
        self.api: Api | None = None
        self.nodes: dict[str, EdgeAgent] = {}
        self.pebble: Pebble | None = None
        self.pebble2: Pebble | None = None
        self.roots = ""

    def start(self) -> None:
        dns_server = f"{self.dns_server[0]}:{self.dns_server[1]}"
        self.pebble = self.exits.enter_context(
            running_pebble(self.tmp, http_port=self.http_port, dns_server=dns_server)
        )
        self.pebble2 = self.exits.enter_context(
            running_pebble(
                self.tmp, http_port=self.certbot_port, dns_server=dns_server, name="pebble-certbot"
            )
        )
        self.roots = self.pebble.roots_pem()
        closed = str(free_udp_port("127.0.0.1"))
        env = clean_env(
            EDGEPLANE_ACME_DIRECTORY=self.pebble.directory_url,
            EDGEPLANE_ACME_CA_BUNDLE=self.pebble.ca_bundle,
            EDGEPLANE_ACME_EMAIL="ops@example.org",
            EDGEPLANE_DNS_RESOLVERS=f"127.0.0.1:{closed}",
            EDGEPLANE_SMTP_HOST="127.0.0.1",
            EDGEPLANE_SMTP_PORT=closed,
        )
        cp = self.cp = start_up(self.tmp / "cp", env=env)
        self.cleanup.add(cp.stop)
        api = self.api = Api(cp)
        self.cleanup.add(api.close)
        for key, (region, address) in NODES.items():
            agent = new_agent(cp, api, self.tmp, f"edge-{key}")
            agent.http_port, agent.https_port = self.http_port, self.https_port
            agent.region, agent.bind, agent.dns_port = region, address, self.dns_ports[key]
            self.cleanup.add(agent.stop)
            self.nodes[key] = agent.start()
        wait_for(
            lambda: len([n for n in api.nodes() if n["live"]]) == len(NODES) or None,
            60, "live edge nodes",
        )  # fmt: skip

    def wait_in_sync(self, timeout: float = 60) -> list[dict[str, Any]]:
        api = self.api
        assert api is not None

        def synced() -> list[dict[str, Any]] | None:
            docs: list[dict[str, Any]] = api.nodes()
            return docs if docs and all(d["in_sync"] for d in docs) else None

        docs: list[dict[str, Any]] = wait_for(synced, timeout, "edge nodes in sync", every=0.05)
        return docs

    def add_edge_domain(self, name: str) -> None:
        assert self.api is not None
        self.api.ok("POST", f"{INV}/domains", json={"domain": name})

    def add_standalone_domain(self, name: str) -> None:
        """A domain whose apex and www answer 127.0.0.5, where certbot listens."""
        assert self.api is not None
        self.api.ok("POST", f"{INV}/domains", json={"domain": name, "auto_configure": False})
        self.api.ok("PUT", f"{INV}/domains/{name}/records", json={"records": [
            {"name": "@", "type": "A", "ttl": 60, "values": [STANDALONE]},
            {"name": "www", "type": "A", "ttl": 60, "values": [STANDALONE]},
        ]})  # fmt: skip

    def resolved(self, name: str, want: list[str] | None) -> bool:
        got = resolves(*self.dns_server, name)
        return bool(got) if want is None else got == want

    # ----------------------------------------------------------------------- one round each

    def edge_round(self, domain: str) -> EdgeRound:
        assert self.api is not None
        t0 = time.perf_counter()
        stop = threading.Event()
        watches = {
            key: NodeWatch(
                key=key,
                address=a.bind,
                https_port=self.https_port,
                acme_dir=a.prefix / "acme-challenge",
                name=domain,
                t0=t0,
            )
            for key, a in self.nodes.items()
        }
        threads = [
            threading.Thread(target=w.run, args=(stop,), daemon=True) for w in watches.values()
        ]
        files = threading.Thread(
            target=watch_challenges, args=(list(watches.values()), stop), daemon=True
        )
        files.start()
        for t in threads:
            t.start()
        try:
            r = self.api.http.post(
                f"{INV}/ssl/{domain}", json={"type": "lets_encrypt"}, timeout=120
            )
            api_s = time.perf_counter() - t0
            if r.status_code != 201:
                raise RuntimeError(f"POST /ssl/{domain}: {r.status_code} {r.text[:500]}")
            fingerprint = r.json()["certificate"]["fingerprint"]
            for w in watches.values():
                w.target = fingerprint
            for t in threads:
                t.join(ROUND_TIMEOUT_S + 5)
        finally:
            stop.set()
            files.join(5)
        per_node: dict[str, float] = {}
        for key, w in watches.items():
            if w.error is not None:
                raise RuntimeError(f"watching {key}: {w.error!r}")
            if fingerprint not in w.fingerprints:
                raise RuntimeError(f"{key} did not serve the new certificate for {domain}")
            per_node[key] = w.fingerprints[fingerprint]
        # the chain verifies against Pebble's roots (TLS 1.3), on every node
        for key, a in self.nodes.items():
            failed: list[str] = []
            for _ in range(100):  # a handshake may meet a reload: retry for up to ~10 s
                got = verified_handshake(self.roots, a.bind, self.https_port, f"www.{domain}")
                if got == "TLSv1.3":
                    break
                failed.append(got)
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{key}: www.{domain} did not verify over TLS 1.3 ({failed})")
            if failed:
                log(f"{key}: verifying www.{domain} took {len(failed) + 1} tries: {failed[0]}")
        tokens = [set(w.challenges) for w in watches.values()]
        challenges_s = None
        if not all(len(t) >= 2 for t in tokens):
            log(f"{domain}: HTTP-01 files seen: {[sorted(t) for t in tokens]}")
        else:  # two authorizations: the domain and www
            challenges_s = max(max(w.challenges.values()) for w in watches.values())
        gone_s = None
        if challenges_s is not None and all(
            set(w.gone) >= set(w.challenges) for w in watches.values()
        ):
            gone_s = max(max(w.gone.values()) for w in watches.values())
        docs = self.wait_in_sync()
        return EdgeRound(
            api_s=api_s,
            every_s=max(per_node.values()),
            first_s=min(per_node.values()),
            per_node_s=per_node,
            challenges_s=challenges_s,
            gone_s=gone_s,
            apply_ms=[float(d["apply_ms"]) for d in docs if d.get("apply_ms") is not None],
            propagation_ms=[
                float(d["propagation_ms"]) for d in docs if d.get("propagation_ms") is not None
            ],
            handshakes=sum(w.handshakes for w in watches.values()),
        )

    def certbot_round(self, certbot: str, domain: str) -> float:
        assert self.pebble2 is not None
        base = self.tmp / "certbot"
        cmd = [
            certbot, "certonly", "--standalone", "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--server", self.pebble2.directory_url,
            "--http-01-port", str(self.certbot_port), "--http-01-address", STANDALONE,
            "--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
            "--logs-dir", str(base / "logs"), "-d", domain, "-d", f"www.{domain}",
        ]  # fmt: skip
        env = dict(os.environ, REQUESTS_CA_BUNDLE=self.pebble2.ca_bundle)
        t0 = time.perf_counter()
        r = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120
        )
        took = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"certbot failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if not (base / "config" / "live" / domain / "fullchain.pem").exists():
            raise RuntimeError(f"certbot wrote no certificate for {domain}:\n{r.stdout}")
        return took

    def certbot_start(self, certbot: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([certbot, "--version"], capture_output=True, check=True, timeout=60)
        return time.perf_counter() - t0


class Responder:
    """A standalone HTTP-01 responder on 127.0.0.5 (what certbot --standalone runs), as the
    ChallengeSink of Edgeplane's ACME client: the answers are served the moment they are set."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        answers = self.answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                body = answers.get(token)
                if not self.path.startswith("/.well-known/acme-challenge/") or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer((STANDALONE, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ChallengeSink
    def publish_http01(self, domain: str, token: str, key_authorization: str) -> None:
        self.answers[token] = key_authorization

    def publish_dns01(self, name: str, value: str) -> None:
        raise NotImplementedError

    def wait_published(self) -> None:
        pass

    def unpublish_http01(self, token: str) -> None:
        self.answers.pop(token, None)

    def unpublish_dns01(self, name: str, value: str) -> None:
        pass


@dataclass
class ClientRound:
    total_s: float
    steps: dict[str, float]  # segment -> seconds


def client_round(stack: CertificateStack, account: tuple[str, str], domain: str) -> ClientRound:
    from edgeplane.certificates.acme import client as acme_client

    assert stack.pebble2 is not None
    settings = acme_client.AcmeSettings(
        directory_url=stack.pebble2.directory_url, ca_bundle=stack.pebble2.ca_bundle
    )
    marks: list[tuple[str, float]] = []
    responder = Responder(stack.certbot_port)
    try:
        t0 = time.perf_counter()
        acme_client.obtain(
            settings, account[0], account[1], [domain, f"www.{domain}"], "http-01", responder,
            progress=lambda m: marks.append((m, time.perf_counter() - t0)),
        )  # fmt: skip
        total = time.perf_counter() - t0
    finally:
        responder.close()

    def at(prefix: str, last: bool = False) -> float:
        found = [t for m, t in marks if m.startswith(prefix) or m.endswith(prefix)]
        if not found:
            raise RuntimeError(f"no progress {prefix!r} in {marks}")
        return found[-1] if last else found[0]

    order = at("order created")
    valid = at(": valid", last=True)
    final = at("finalized")
    return ClientRound(
        total_s=total,
        steps={
            "new order (+ its authorizations)": order,
            "answer both challenges, poll until valid": valid - order,
            "finalize (CSR), poll the order": final - valid,
            "download the chain": at("certificate downloaded") - final,
        },
    )


# --------------------------------------------------------------------------- report


def spread(values: list[float], scale: float = 1000) -> str:
    v = [x * scale for x in values]
    return f"{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})"


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds of each (median)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: one timed round after the warm-up (about 30 s); the "
                    "tests run it")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1
    certbot = certbot_binary()
    missing = [b for b in ("pebble", "nginx", "pdns_server") if shutil.which(b) is None]
    if certbot is None:
        missing.append("certbot (.venv/bin/pip install certbot)")
    if missing:
        print(f"bench/certs.py needs {', '.join(missing)}", file=sys.stderr)
        return 2
    assert certbot is not None
    run = BenchRun("certs")
    started, tmp, cleanup = run.started, run.tmp, run.cleanup
    n = args.rounds
    edge: list[EdgeRound] = []
    bot: list[float] = []
    alone: list[ClientRound] = []
    starts: list[float] = []
    try:
        with signals_raise():
            from edgeplane.certificates.acme import client as acme_client

            stack = CertificateStack(tmp, cleanup)
            log("starting two Pebbles, the control plane and two edge nodes")
            stack.start()
            log("adding the domains (round 0 is the warm-up)")
            for i in range(n + 1):
                stack.add_edge_domain(f"b{i}.test")
                stack.add_standalone_domain(f"c{i}.test")
                stack.add_standalone_domain(f"k{i}.test")
            for i in range(n + 1):
                for name in (f"b{i}.test", f"www.b{i}.test"):
                    wait_for(functools.partial(stack.resolved, name, None), 30, f"{name} in DNS")
                for name in (f"c{i}.test", f"www.c{i}.test", f"k{i}.test", f"www.k{i}.test"):
                    wait_for(
                        functools.partial(stack.resolved, name, [STANDALONE]), 30, f"{name} in DNS"
                    )
            stack.wait_in_sync()
            assert stack.pebble2 is not None
            key = acme_client.new_account_key()
            account = (key, acme_client.register(
                acme_client.AcmeSettings(directory_url=stack.pebble2.directory_url,
                                         ca_bundle=stack.pebble2.ca_bundle), key))  # fmt: skip
            for i in range(n + 1):
                tag = "warm-up" if i == 0 else f"round {i}/{n}"
                e = stack.edge_round(f"b{i}.test")
                c = stack.certbot_round(certbot, f"c{i}.test")
                k = client_round(stack, account, f"k{i}.test")
                s = stack.certbot_start(certbot)
                log(f"{tag}: edgeplane every node {e.every_s * 1000:.0f} ms (first "
                    f"{e.first_s * 1000:.0f}, API {e.api_s * 1000:.0f}, HTTP-01 on both nodes "
                    f"{(e.challenges_s or float('nan')) * 1000:.0f}, apply {e.apply_ms}); "
                    f"certbot {c * 1000:.0f} ms; client alone {k.total_s * 1000:.0f} ms; "
                    f"certbot --version {s * 1000:.0f} ms")  # fmt: skip
                if i == 0:
                    continue
                edge.append(e)
                bot.append(c)
                alone.append(k)
                starts.append(s)
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()

    every = [e.every_s for e in edge]
    first = [e.first_s for e in edge]
    api = [e.api_s for e in edge]
    after_api = [e.every_s - e.api_s for e in edge]
    chall = [e.challenges_s for e in edge if e.challenges_s is not None]
    gone = [e.gone_s for e in edge if e.gone_s is not None]
    applies = [x / 1000 for e in edge for x in e.apply_ms]
    props = [x / 1000 for e in edge for x in e.propagation_ms]
    total_alone = [k.total_s for k in alone]
    ref = med(bot)

    def ratio(values: list[float]) -> str:
        return f"{med(values) / ref:.2f}x"

    rows = [
        [f"API call -> EVERY node serves the new certificate, ms, median (min-max) of {n}",
         spread(every), spread(bot), ratio(every)],
        ["API call -> FIRST node serves it, ms", spread(first), spread(bot), ratio(first)],
        ["API call's own duration (201 with the certificate), ms", spread(api), spread(bot),
         ratio(api)],
        ["  of which: until both nodes serve both HTTP-01 answers, ms",
         spread(chall) if chall else "-", "", ""],
        ["  of which: until both nodes removed them again (order done), ms",
         spread(gone) if gone else "-", "", ""],
        ["  API answer -> every node serves the certificate, ms", spread(after_api), "", ""],
        ["  node-reported apply (render, check, swap, reload, probe), ms, both nodes",
         spread(applies) if applies else "-", "", ""],
        ["  node-reported commit -> acknowledgement, ms, both nodes",
         spread(props) if props else "-", "", ""],
        ["Edgeplane's ACME client alone, standalone responder (2nd Pebble), ms",
         spread(total_alone), spread(bot), ratio(total_alone)],
    ]  # fmt: skip
    for step in alone[0].steps:
        rows.append([f"  client alone: {step}, ms", spread([k.steps[step] for k in alone]),
                     "", ""])  # fmt: skip
    rows.append(["certbot --version (process start and imports alone), ms", "", spread(starts),
                 ""])  # fmt: skip
    print(table(rows, args.markdown))
    print()
    handshakes = sum(e.handshakes for e in edge)
    notes = [
        f'edgeplane: POST {INV}/ssl/bN.test {{"type": "lets_encrypt"}} (HTTP-01, bN.test and '
        f"www.bN.test), {n} rounds after one warm-up (which registered the ACME account); "
        "each node polled by its own thread with a TLS handshake (SNI bN.test, no verification, "
        f"leaf SHA-256 compared with the API answer's) every {POLL_S * 1000:.0f} ms plus the "
        f"handshake ({handshakes:,} handshakes); served = the first handshake that returned it; "
        "every chain then verified against Pebble's roots over TLS 1.3 on both nodes",
        "HTTP-01 on both nodes: the first time each agent's acme-challenge/ folder held both "
        "tokens (nginx serves those files without a reload), and when both were gone again "
        "(removed after the chain is downloaded, before the certificate is stored); one more "
        "thread lists both folders every 2 ms",
        "certbot: `certbot certonly --standalone --non-interactive --agree-tos "
        "--register-unsafely-without-email --server <2nd Pebble> --http-01-port <port> "
        f"--http-01-address {STANDALONE} --config-dir/--work-dir/--logs-dir <tmp> -d cN.test "
        "-d www.cN.test` with REQUESTS_CA_BUNDLE=<Pebble's listener CA>, the whole command "
        "timed; one config dir for all runs, so the account made in the warm-up is reused",
        "ACME client alone: edgeplane.certificates.acme.client.obtain() in the bench process "
        f"against the 2nd Pebble for kN.test and www.kN.test, its HTTP-01 answers served by a "
        f"ThreadingHTTPServer on {STANDALONE} (what certbot --standalone does), account "
        "registered before the rounds",
        "both Pebbles: PEBBLE_VA_NOSLEEP=1 (validation at once), no rejected nonces, no "
        "authorization reuse; they resolve every name through node eu-central's PowerDNS "
        f"(cN/kN.test: A {STANDALONE} records with auto_configure off)",
        f"cores: {os.cpu_count()}; Pebbles, the control plane, both nodes, certbot and the "
        f"pollers share them; time for the whole bench: {time.monotonic() - started:.0f} s",
    ]
    if args.quick:
        notes.append("short mode (--quick): one timed round after the warm-up")
    for note in notes:
        print(f"- {note}")
    return run.status()


if __name__ == "__main__":
    raise SystemExit(main())
