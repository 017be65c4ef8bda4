"""The ownership checks against real servers on loopback: PowerDNS Authoritative as both the
recursive resolver and the delegated name server, an HTTP server, an SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, Session
from processes import free_udp_port as free_port  # TCP and UDP: a DNS server needs both

from edgeplane.verification.dns_txt import CHALLENGE_LABEL, check_dns_txt
from edgeplane.verification.email_code import SmtpError, SmtpSettings, send_code
from edgeplane.verification.http_file import WELL_KNOWN_PATH, check_http_file
from edgeplane.verification.resolve import ResolutionError, Resolver

pytestmark = pytest.mark.integration

TOKEN = "good-token-7f3a"
SOA = "ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")

# zone -> (name, type, content); names relative to the zone, "@" for its apex.
ZONES: dict[str, list[tuple[str, str, str]]] = {
    "example.test": [
        ("@", "SOA", SOA),
        ("@", "NS", "ns1.example.test"),
        ("ns1", "A", "127.0.0.1"),
        (CHALLENGE_LABEL, "TXT", f'"{TOKEN}"'),
        (f"{CHALLENGE_LABEL}.multi", "TXT", '"unrelated"'),
        (f"{CHALLENGE_LABEL}.multi", "TXT", f'"{TOKEN[:5]}" "{TOKEN[5:]}"'),
        (f"{CHALLENGE_LABEL}.wrong", "TXT", '"other-token"'),
        (f"{CHALLENGE_LABEL}.cname", "CNAME", "elsewhere.example.test"),
        ("elsewhere", "TXT", f'"{TOKEN}"'),
        ("absent", "A", "127.0.0.1"),
        ("www", "A", "127.0.0.1"),
        ("other", "A", "127.0.0.1"),
        ("alias", "CNAME", "www.example.test"),
        ("ext", "CNAME", "www.other.test"),
        ("noaddr", "TXT", '"no address here"'),
    ],
    # Two name servers; the second one's address has nothing listening.
    "twons.test": [
        ("@", "SOA", SOA),
        ("@", "NS", "ns1.example.test"),
        ("@", "NS", "ns2.twons.test"),
        ("ns2", "A", "127.0.0.2"),
        (CHALLENGE_LABEL, "TXT", f'"{TOKEN}"'),
    ],
    "other.test": [
        ("@", "SOA", SOA),
        ("@", "NS", "ns1.example.test"),
        ("www", "A", "127.0.0.1"),
    ],
}


def write_zones(db: Path, zones: dict[str, list[tuple[str, str, str]]]) -> None:
    con = sqlite3.connect(db)
    try:
        con.executescript(SCHEMA.read_text())
        for zone, records in zones.items():
            cur = con.execute("INSERT INTO domains (name, type) VALUES (?, 'NATIVE')", (zone,))
            for name, rdtype, content in records:
                owner = zone if name == "@" else f"{name}.{zone}"
                con.execute(
                    "INSERT INTO records (domain_id, name, type, content, ttl, auth)"
                    " VALUES (?, ?, ?, ?, 60, 1)",
                    (cur.lastrowid, owner, rdtype, content),
                )
        con.commit()
    finally:
        con.close()


def _answers(port: int) -> bool:
    query = dns.message.make_query("example.test", "SOA")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
    except (dns.exception.Timeout, OSError):
        return False
    return response.rcode() == 0 and bool(response.answer)


@contextlib.contextmanager
def running_authoritative(base: Path) -> Iterator[int]:
    """PowerDNS Authoritative (gsqlite3 backend) serving ``ZONES`` on a free loopback port."""
    binary = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
    if not Path(binary).exists() or not SCHEMA.exists():
        pytest.skip("PowerDNS with the sqlite3 backend is not installed (scripts/bootstrap)")
    base.mkdir(parents=True, exist_ok=True)
    (base / "pdns.conf").write_text("")
    write_zones(base / "pdns.sqlite3", ZONES)
    port = free_port()
    log = base / "pdns.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--daemon=no",
                "--guardian=no",
                f"--config-dir={base}",
                f"--socket-dir={base}",
                "--launch=gsqlite3",
                f"--gsqlite3-database={base / 'pdns.sqlite3'}",
                "--local-address=127.0.0.1",
                f"--local-port={port}",
                "--security-poll-suffix=",
                "--disable-syslog",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pdns_server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def dns_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_authoritative(tmp_path_factory.mktemp("pdns")) as port:
        yield port


@pytest.fixture
def resolver(dns_port: int) -> Resolver:
    return Resolver(nameservers=[("127.0.0.1", dns_port)], timeout_s=1.0, ns_port=dns_port)


# -- resolution ------------------------------------------------------------------------------


def test_delegation_is_found_by_walking_up(resolver: Resolver) -> None:
    assert resolver.delegated_nameservers("deep.below.www.example.test") == [
        ("ns1.example.test", ["127.0.0.1"])
    ]
    assert resolver.delegated_nameservers("twons.test") == [
        ("ns1.example.test", ["127.0.0.1"]),
        ("ns2.twons.test", ["127.0.0.2"]),
    ]


def test_addresses_follow_cnames(resolver: Resolver) -> None:
    assert resolver.addresses("www.example.test") == ["127.0.0.1"]
    assert resolver.addresses("alias.example.test") == ["127.0.0.1"]  # in the zone
    assert resolver.addresses("ext.example.test") == ["127.0.0.1"]  # through the resolver
    with pytest.raises(ResolutionError, match=r"noaddr\.example\.test has no A or AAAA"):
        resolver.addresses("noaddr.example.test")
    with pytest.raises(ResolutionError, match="NXDOMAIN"):
        resolver.addresses("missing.example.test")


def test_a_public_suffix_has_no_delegation_to_check(resolver: Resolver) -> None:
    with pytest.raises(ResolutionError, match="public suffix"):
        resolver.delegated_nameservers("co.uk")


def test_resolvers_must_be_addresses() -> None:
    with pytest.raises(ValueError, match="IP address"):
        Resolver(nameservers=[("dns.example", 53)])


# -- DNS TXT ---------------------------------------------------------------------------------


def test_txt_with_the_token_passes(resolver: Resolver, dns_port: int) -> None:
    result = check_dns_txt("example.test", TOKEN, resolver)
    assert result.ok, result.reason
    assert result.checked == (f"ns1.example.test (127.0.0.1:{dns_port})",)
    assert "ns1.example.test" in result.reason


def test_multi_string_txt_is_joined(resolver: Resolver) -> None:
    result = check_dns_txt("multi.example.test", TOKEN, resolver)
    assert result.ok, result.reason


def test_absent_txt_fails_with_the_name_to_add(resolver: Resolver, dns_port: int) -> None:
    result = check_dns_txt("absent.example.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason == (
        f"TXT {CHALLENGE_LABEL}.absent.example.test at ns1.example.test (127.0.0.1:{dns_port}): "
        "the name does not exist (NXDOMAIN); add a TXT record there holding the token"
    )


def test_wrong_token_shows_what_was_found(resolver: Resolver, dns_port: int) -> None:
    result = check_dns_txt("wrong.example.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason == (
        f"TXT {CHALLENGE_LABEL}.wrong.example.test at ns1.example.test "
        f"(127.0.0.1:{dns_port}) holds no record with the token; found: 'other-token'"
    )


def test_a_cname_at_the_challenge_name_is_named(resolver: Resolver) -> None:
    result = check_dns_txt("cname.example.test", TOKEN, resolver)
    assert not result.ok
    assert "CNAME to elsewhere.example.test" in result.reason


def test_every_name_server_must_answer(dns_port: int) -> None:
    resolver = Resolver(nameservers=[("127.0.0.1", dns_port)], timeout_s=0.3, ns_port=dns_port)
    result = check_dns_txt("twons.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason.startswith("1 of 2 name servers lack the token")
    assert f"ns2.twons.test (127.0.0.2:{dns_port}) did not answer within 0.3 s" in result.reason
    assert "ns1.example.test" not in result.reason.split(":", 1)[1]
    assert result.checked == (
        f"ns1.example.test (127.0.0.1:{dns_port})",
        f"ns2.twons.test (127.0.0.2:{dns_port})",
    )


def test_name_server_down_is_a_timeout(dns_port: int) -> None:
    dead = free_port()
    resolver = Resolver(nameservers=[("127.0.0.1", dns_port)], timeout_s=0.3, ns_port=dead)
    result = check_dns_txt("example.test", TOKEN, resolver)
    assert not result.ok
    assert f"ns1.example.test (127.0.0.1:{dead}) did not answer within 0.3 s" in result.reason


def test_resolver_down_is_a_timeout() -> None:
    dead = free_port()
    resolver = Resolver(nameservers=[("127.0.0.1", dead)], timeout_s=0.3)
    result = check_dns_txt("example.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason == f"resolver 127.0.0.1:{dead} did not answer NS example.test within 0.3 s"


def test_unknown_domain_is_explained(resolver: Resolver) -> None:
    result = check_dns_txt("nowhere.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason == (  # the local server serves no such zone
        f"resolver could not answer NS nowhere.test: resolver 127.0.0.1:{resolver.ns_port} "
        "answered REFUSED"
    )


# -- HTTP file -------------------------------------------------------------------------------

SERVED_HOSTS = {"www.example.test", "alias.example.test", "ext.example.test"}
OTHER_HOST_REDIRECT = "http://elsewhere.test/"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        token = self.path.removeprefix(WELL_KNOWN_PATH)
        if host not in SERVED_HOSTS:
            self._send(404, b"no such site")
        elif self.path == WELL_KNOWN_PATH + TOKEN or self.path == "/moved/redirect-token":
            self._send(200, (token if token != self.path else "redirect-token").encode() + b"\n")
        elif token == "wrong-body":
            self._send(200, b"something else")
        elif token == "redirect-token":
            self._send(302, b"", location="/moved/redirect-token")
        elif token == "offsite-token":
            self._send(302, b"", location=OTHER_HOST_REDIRECT)
        elif token == "big-token":
            self._send(200, b"big-token" + b" " * 10_000)
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_http_file_served_passes(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("www.example.test", TOKEN, resolver, port=http_port)
    assert result.ok, result.reason
    assert result.checked == (
        f"http://www.example.test:{http_port}{WELL_KNOWN_PATH}{TOKEN} at 127.0.0.1",
    )


def test_http_file_through_cnames(resolver: Resolver, http_port: int) -> None:
    assert check_http_file("alias.example.test", TOKEN, resolver, port=http_port).ok
    assert check_http_file("ext.example.test", TOKEN, resolver, port=http_port).ok


def test_http_wrong_body_shows_what_came_back(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("www.example.test", "wrong-body", resolver, port=http_port)
    assert not result.ok
    assert result.reason == (
        f"http://www.example.test:{http_port}{WELL_KNOWN_PATH}wrong-body at 127.0.0.1 "
        "answered 200 with 'something else' instead of the token"
    )


def test_http_missing_file_is_a_404(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("www.example.test", "unknown-token", resolver, port=http_port)
    assert not result.ok
    assert "at 127.0.0.1 answered 404 with 'not found'" in result.reason


def test_http_wrong_host_is_not_served(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("other.example.test", TOKEN, resolver, port=http_port)
    assert not result.ok
    assert f"http://other.example.test:{http_port}" in result.reason
    assert "answered 404 with 'no such site'" in result.reason


def test_http_redirects_stay_on_the_domain(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("www.example.test", "redirect-token", resolver, port=http_port)
    assert result.ok, result.reason
    assert len(result.checked) == 2
    result = check_http_file("www.example.test", "offsite-token", resolver, port=http_port)
    assert not result.ok
    assert f"redirects to {OTHER_HOST_REDIRECT!r}, away from www.example.test" in result.reason


def test_http_body_is_limited(resolver: Resolver, http_port: int) -> None:
    result = check_http_file("www.example.test", "big-token", resolver, port=http_port)
    assert not result.ok
    assert "more than 4096 bytes" in result.reason


def test_http_server_down(resolver: Resolver) -> None:
    dead = free_port()
    result = check_http_file("www.example.test", TOKEN, resolver, port=dead, timeout_s=1.0)
    assert not result.ok
    assert f"http://www.example.test:{dead}{WELL_KNOWN_PATH}{TOKEN} at 127.0.0.1" in result.reason
    assert result.reason.endswith("could not be fetched: connection refused")


def test_http_without_an_address(resolver: Resolver) -> None:
    result = check_http_file("noaddr.example.test", TOKEN, resolver)
    assert not result.ok
    assert result.reason == "noaddr.example.test has no A or AAAA record"


# -- email code ------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_RCPT(
        self, server: SmtpServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("webmaster@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@contextlib.contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, server_hostname="smtp.test", **kwargs
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_code_is_mailed_to_the_admin_addresses() -> None:
    with smtp_server() as (inbox, port):
        settings = SmtpSettings("127.0.0.1", port, sender="verify@edgeplane.test")
        sent = send_code("Example.TEST", "12345678", settings, valid_minutes=30)
    expected = [f"{local}@example.test" for local in ("admin", "administrator", "hostmaster")]
    expected.append("postmaster@example.test")
    assert sent == expected  # webmaster@ was refused by the server
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.mail_from == "verify@edgeplane.test"
    assert envelope.rcpt_tos == expected
    assert isinstance(envelope.content, bytes)
    body = envelope.content.decode()
    assert "12345678" in body
    assert "valid for 30 minutes" in body
    assert "To: admin@example.test, administrator@example.test" in body
    assert "Subject: Verification code for example.test" in body


def test_smtp_refused_connection_is_clear() -> None:
    dead = free_port()
    with pytest.raises(SmtpError) as caught:
        send_code("example.test", "12345678", SmtpSettings("127.0.0.1", dead, timeout_s=2))
    assert (
        str(caught.value)
        == f"could not connect to SMTP server 127.0.0.1:{dead}: connection refused"
    )


def test_smtp_login_failure_never_shows_the_password() -> None:
    password = "hunter2-very-secret"

    def deny(*_args: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    with smtp_server(auth_require_tls=False, authenticator=deny) as (_inbox, port):
        settings = SmtpSettings("127.0.0.1", port, username="mailer", password=password)
        with pytest.raises(SmtpError) as caught:
            send_code("example.test", "12345678", settings)
    message = str(caught.value)
    assert message.startswith(f"SMTP server 127.0.0.1:{port} rejected the login: 535")
    assert password not in message
    assert caught.value.__suppress_context__  # no smtplib traceback chained in logs
    assert password not in repr(caught.value.args)
