"""Delivering one notification to one channel; failures are results, never exceptions.

A webhook gets a JSON POST (signed when the channel has a secret), a Slack-compatible webhook
its ``{"text": ...}`` body, an email channel a mail through its SMTP server. No redirect is
followed (a 3xx is a failure) and no proxy is taken from the environment. Error messages are
short and never hold a credential: not the SMTP password, not a URL's query string, and not
a chat webhook's URL at all (its path is the token).
"""

from __future__ import annotations

import base64
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.utils import parseaddr

import httpx

from edgeplane.notify.channels import ChannelConfig, EmailChannel, SlackChannel, WebhookChannel
from edgeplane.notify.message import Notification, email_message, slack_body, webhook_body
from edgeplane.notify.signing import sign
from edgeplane.version import __version__

USER_AGENT = f"edgeplane/{__version__}"


@dataclass(frozen=True)
class Delivery:
    """How a delivery went. ``status``: the HTTP status, or the SMTP reply code of a refusal.
    ``error`` may be set with ``ok`` when a mail reached only some of its recipients."""

    ok: bool
    error: str | None
    status: int | None
    ms: float


def send(config: ChannelConfig, notification: Notification, *, timeout_s: float = 10.0) -> Delivery:
    """Deliver ``notification`` through ``config``; never raises for a delivery failure."""
    start = time.monotonic()
    if isinstance(config, WebhookChannel):
        body = webhook_body(notification)
        extra = dict(config.headers)
        if config.secret is not None:
            extra.update(sign(config.secret, body, int(time.time())))
        ok, error, status = _post(config.url, body, extra, "the webhook", timeout_s)
    elif isinstance(config, SlackChannel):
        body = slack_body(notification)
        ok, error, status = _post(config.url, body, {}, "the chat webhook", timeout_s)
    else:
        ok, error, status = _mail(config, notification, timeout_s)
    return Delivery(ok=ok, error=error, status=status, ms=(time.monotonic() - start) * 1000)


def _post(
    url: str, body: bytes, extra: dict[str, str], what: str, timeout_s: float
) -> tuple[bool, str | None, int | None]:
    headers = {"User-Agent": USER_AGENT, **extra, "Content-Type": "application/json"}
    try:
        with (
            httpx.Client(timeout=timeout_s, trust_env=False, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            status = response.status_code  # the body is not read: only the status counts
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        # the type only: httpx's messages may hold the URL
        return False, f"{what} is unreachable: {type(e).__name__}", None
    if status >= 300:
        return False, f"{what} answered {status}", status
    return True, None, status


def _scrub(text: str, config: EmailChannel) -> str:
    """``text`` without the password in any form an AUTH exchange might echo."""
    if not config.password:
        return text
    user = config.username or ""
    forms = {
        config.password,
        base64.b64encode(config.password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{config.password}".encode()).decode(),
    }
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(raw.split())}".strip()[:300]


def _explain(e: Exception, server: str) -> tuple[str, int | None]:
    """A short message for an SMTP failure, and the server's reply code when it gave one."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        replies = sorted({_reply(c, t) for c, t in e.recipients.values()})
        return f"the SMTP server {server} refused every recipient: {'; '.join(replies)}", None
    if isinstance(e, smtplib.SMTPAuthenticationError):
        reply = _reply(e.smtp_code, e.smtp_error)
        return f"the SMTP server {server} rejected the login: {reply}", e.smtp_code
    if isinstance(e, smtplib.SMTPSenderRefused):
        reply = _reply(e.smtp_code, e.smtp_error)
        return f"the SMTP server {server} refused the sender: {reply}", e.smtp_code
    if isinstance(e, smtplib.SMTPResponseException):  # connect, HELO, DATA
        reply = _reply(e.smtp_code, e.smtp_error)
        return f"the SMTP server {server} answered {reply}", e.smtp_code
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return f"the SMTP server {server} does not support {_first_word(e)}", None
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return f"the SMTP server {server} closed the connection unexpectedly", None
    if isinstance(e, ConnectionRefusedError):
        return f"the SMTP server {server} is unreachable: connection refused", None
    if isinstance(e, TimeoutError):
        return f"the SMTP server {server} did not answer in time", None
    if isinstance(e, ssl.SSLError):
        return f"TLS with the SMTP server {server} failed: {e.reason or type(e).__name__}", None
    if isinstance(e, OSError):
        return f"the SMTP server {server} is unreachable: {e.strerror or type(e).__name__}", None
    return f"sending through the SMTP server {server} failed: {type(e).__name__}", None


def _first_word(e: Exception) -> str:
    text = str(e)
    if "STARTTLS" in text.upper():
        return "STARTTLS"
    if "AUTH" in text.upper():
        return "login (AUTH)"
    return "what was asked"


def _mail(
    config: EmailChannel, n: Notification, timeout_s: float
) -> tuple[bool, str | None, int | None]:
    msg = email_message(n, config.from_address, config.to)
    sender = parseaddr(config.from_address)[1]
    recipients = [parseaddr(to)[1] for to in config.to]
    # The EHLO name: the sender's domain (smtplib would look the host's FQDN up in DNS).
    helo = sender.rpartition("@")[2] or "localhost"
    server = f"{config.smtp_host}:{config.smtp_port}"
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if config.security == "tls":
            client = smtplib.SMTP_SSL(
                config.smtp_host,
                config.smtp_port,
                local_hostname=helo,
                timeout=timeout_s,
                context=context,
            )
        else:
            client = smtplib.SMTP(
                config.smtp_host, config.smtp_port, local_hostname=helo, timeout=timeout_s
            )
        with client:
            if config.security == "starttls":
                client.starttls(context=context)
            if config.username is not None:
                client.login(config.username, config.password or "")
            refused = client.send_message(msg, from_addr=sender, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as e:
        message, code = _explain(e, server)
        return False, _scrub(message, config), code
    if refused:
        replies = "; ".join(f"{to}: {_reply(c, t)}" for to, (c, t) in sorted(refused.items()))
        error = f"the SMTP server {server} refused {len(refused)} of {len(recipients)}: {replies}"
        return True, _scrub(error, config), None
    return True, None, None
