"""Notifications delivered to real servers on loopback: an HTTP server standing for a webhook
receiver and a Slack-compatible one, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from processes import free_port

from edgeplane.notify.channels import EmailChannel, SlackChannel, WebhookChannel
from edgeplane.notify.message import Notification
from edgeplane.notify.send import USER_AGENT, send
from edgeplane.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

SECRET = "whsec-integration-key"
PASSWORD = "hunter2-very-secret"
STARTED = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


def notification(event: str = "firing") -> Notification:
    return Notification(
        event=event,  # type: ignore[arg-type]
        alert_id="alert-9f8e7d",
        project="shop",
        rule="downtime",
        severity="critical",
        object_id="shop.example.com",
        summary="HTTP checks fail from 3 of 3 regions",
        value=3.0,
        threshold=2.0,
        started_at=STARTED,
        resolved_at=STARTED + dt.timedelta(minutes=30) if event == "resolved" else None,
        details={"regions": ["eu", "us", "ap"]},
    )


# -- HTTP ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    port: int
    status: int = 204
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def http_receiver(status: int = 204) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(port=0, status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_signed_webhook_is_received_and_verifies() -> None:
    with http_receiver() as receiver:
        config = WebhookChannel(
            kind="webhook",
            url=receiver.url("/hooks/alerts?tenant=7"),
            secret=SECRET,
            headers={"X-Tenant": "shop"},
        )
        delivery = send(config, notification())
    assert (delivery.ok, delivery.error, delivery.status) == (True, None, 204)
    assert 0 < delivery.ms < 10_000
    [request] = receiver.requests
    assert request.path == "/hooks/alerts?tenant=7"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["X-Tenant"] == "shop"
    assert verify(SECRET, request.body, request.headers, now=time.time())
    assert not verify("another key", request.body, request.headers, now=time.time())
    data = json.loads(request.body)
    assert data["version"] == 1
    assert data["event"] == "firing"
    assert data["alert_id"] == "alert-9f8e7d"
    assert data["started_at"] == "2026-01-31T12:00:00Z"
    assert data["details"] == {"regions": ["eu", "us", "ap"]}


def test_an_unsigned_webhook_has_no_signature_headers() -> None:
    with http_receiver(status=200) as receiver:
        delivery = send(WebhookChannel(kind="webhook", url=receiver.url("/")), notification())
    assert delivery.ok and delivery.status == 200
    headers = {k.lower() for k in receiver.requests[0].headers}
    assert SIGNATURE_HEADER.lower() not in headers and TIMESTAMP_HEADER.lower() not in headers


def test_a_webhook_answering_503_fails() -> None:
    with http_receiver(status=503) as receiver:
        config = WebhookChannel(kind="webhook", url=receiver.url("/h?token=querysecret"))
        delivery = send(config, notification())
    assert (delivery.ok, delivery.error, delivery.status) == (
        False,
        "the webhook answered 503",
        503,
    )
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed() -> None:
    with http_receiver(status=302) as receiver:
        delivery = send(WebhookChannel(kind="webhook", url=receiver.url("/")), notification())
    assert (delivery.ok, delivery.error) == (False, "the webhook answered 302")


def test_a_closed_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/h?token=querysecret"
    delivery = send(WebhookChannel(kind="webhook", url=url), notification(), timeout_s=2)
    assert (delivery.ok, delivery.status) == (False, None)
    assert delivery.error == "the webhook is unreachable: ConnectError"


def test_a_slack_compatible_receiver_gets_text() -> None:
    with http_receiver(status=200) as receiver:
        config = SlackChannel(kind="slack", url=receiver.url("/hooks/T000/B000/tokenXYZ"))
        delivery = send(config, notification("resolved"))
    assert (delivery.ok, delivery.error, delivery.status) == (True, None, 200)
    [request] = receiver.requests
    assert request.path == "/hooks/T000/B000/tokenXYZ"
    assert request.headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in request.headers
    data = json.loads(request.body)
    assert data["text"].startswith("[RESOLVED] downtime: shop.example.com: HTTP checks fail")
    assert data["attachments"][0]["color"] == "#2eb67d"


def test_a_slack_404_does_not_show_the_url() -> None:
    with http_receiver(status=404) as receiver:
        url = receiver.url("/hooks/T000/B000/tokenXYZ")
        delivery = send(SlackChannel(kind="slack", url=url), notification())
    assert (delivery.ok, delivery.error, delivery.status) == (
        False,
        "the chat webhook answered 404",
        404,
    )
    dead = SlackChannel(kind="slack", url=f"http://127.0.0.1:{free_port()}/hooks/tokenXYZ")
    delivery = send(dead, notification(), timeout_s=2)
    assert delivery.error == "the chat webhook is unreachable: ConnectError"


# -- SMTP ----------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@contextlib.contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, server_hostname="smtp.test", **kwargs
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def email_channel(port: int, **kwargs: Any) -> EmailChannel:
    fields: dict[str, Any] = {
        "kind": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "from_address": "Edgeplane <alerts@edgeplane.test>",
        "to": ["ops@example.test", "Oncall <oncall@example.test>"],
    }
    return EmailChannel(**{**fields, **kwargs})


def only_mailer(
    server: SmtpServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"mailer",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535


LOGIN_REQUIRED: dict[str, Any] = {
    "auth_require_tls": False,
    "auth_required": True,
    "authenticator": only_mailer,
}


def test_an_email_is_received() -> None:
    with smtp_server() as (inbox, port):
        delivery = send(email_channel(port), notification("resolved"))
    assert (delivery.ok, delivery.error) == (True, None)
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "alerts@edgeplane.test"
    assert envelope.rcpt_tos == ["ops@example.test", "oncall@example.test"]
    msg = inbox.message()
    assert msg["From"] == "Edgeplane <alerts@edgeplane.test>"
    assert msg["To"] == "ops@example.test, Oncall <oncall@example.test>"
    assert msg["Subject"] == "[RESOLVED] downtime: shop.example.com"
    assert msg["In-Reply-To"] == "<alert-9f8e7d.firing@alerts.edgeplane>"
    assert msg["X-Edgeplane-Alert"] == "alert-9f8e7d"
    body = msg.get_content()
    assert "HTTP checks fail from 3 of 3 regions" in body
    assert "Resolved:  2026-01-31T12:30:00Z" in body


def test_an_email_with_the_right_login_is_received() -> None:
    with smtp_server(**LOGIN_REQUIRED) as (inbox, port):
        delivery = send(email_channel(port, username="mailer", password=PASSWORD), notification())
    assert (delivery.ok, delivery.error) == (True, None)
    assert inbox.message()["Subject"] == "[FIRING critical] downtime: shop.example.com"


def test_a_wrong_password_fails_without_showing_it() -> None:
    wrong = "wrong-" + PASSWORD
    with smtp_server(**LOGIN_REQUIRED) as (inbox, port):
        delivery = send(email_channel(port, username="mailer", password=wrong), notification())
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"the SMTP server 127.0.0.1:{port} rejected the login: 535")
    assert delivery.status == 535
    assert wrong not in repr(delivery) and PASSWORD not in repr(delivery)
    assert inbox.envelopes == []


def test_a_closed_smtp_port_is_unreachable() -> None:
    port = free_port()
    delivery = send(email_channel(port), notification(), timeout_s=2)
    assert not delivery.ok
    assert delivery.error == f"the SMTP server 127.0.0.1:{port} is unreachable: connection refused"


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def test_starttls_checks_the_server_certificate(tmp_path: Path) -> None:
    with smtp_server(tls_context=_self_signed(tmp_path)) as (inbox, port):
        delivery = send(email_channel(port, security="starttls"), notification())
        without = send(email_channel(port), notification())
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"TLS with the SMTP server 127.0.0.1:{port} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error
    assert without.ok  # the same server takes plain mail: the failure was STARTTLS's
    assert len(inbox.envelopes) == 1


def test_starttls_unsupported_is_named() -> None:
    with smtp_server() as (_inbox, port):
        delivery = send(email_channel(port, security="starttls"), notification())
    assert (delivery.ok, delivery.error) == (
        False,
        f"the SMTP server 127.0.0.1:{port} does not support STARTTLS",
    )
