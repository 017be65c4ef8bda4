"""The email check: a one-time code mailed to the domain's administrative addresses.

The addresses are the CA/Browser Forum's constructed ones (Baseline Requirements 3.2.2.4.4).
Only a salted, stretched hash of the code is stored; ``code_matches`` compares in constant
time. SMTP failures raise ``SmtpError`` naming the server and its reply, never a credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from edgeplane.verification.resolve import ResolutionError, normalize

ADMIN_LOCAL_PARTS = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")
CODE_DIGITS = 8
HASH_ITERATIONS = 200_000
"""PBKDF2-SHA256 rounds: an 8-digit code has few values, so each guess must cost."""


class SmtpError(Exception):
    """The code could not be sent; the message names the server and its reply only."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "edgeplane@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0


def admin_addresses(domain: str) -> list[str]:
    """admin@, administrator@, hostmaster@, postmaster@ and webmaster@ the domain."""
    try:
        name = normalize(domain)
    except ResolutionError as e:
        raise ValueError(str(e)) from None
    return [f"{local}@{name}" for local in ADMIN_LOCAL_PARTS]


def new_code() -> str:
    """A fresh code of ``CODE_DIGITS`` random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_salt() -> str:
    """A fresh random salt for ``hash_code``."""
    return secrets.token_hex(16)


def _clean(code: str) -> str:
    return "".join(ch for ch in code if ch not in " -\t")  # as a person may type it


def hash_code(code: str, salt: str) -> str:
    """The hex PBKDF2-SHA256 of the code (spaces and dashes ignored) with ``salt``."""
    digest = hashlib.pbkdf2_hmac("sha256", _clean(code).encode(), salt.encode(), HASH_ITERATIONS)
    return digest.hex()


def code_matches(code: str, salt: str, hashed: str) -> bool:
    """Whether ``code`` is the one ``hashed`` was made from, compared in constant time."""
    expected = hashed.strip().lower()
    if not expected.isascii():
        return False
    return hmac.compare_digest(hash_code(code, salt), expected)


def _message(
    domain: str, code: str, sender: str, recipients: list[str], valid: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"Verification code for {domain}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="edgeplane")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"Someone asked to prove control of {domain} to an Edgeplane control plane.\n"
        "\n"
        f"The verification code is: {code}\n"
        "\n"
        f"It is valid for {valid}. Enter it where the verification was started.\n"
        "If you did not expect this message, ignore it: without the code nothing changes.\n"
    )
    return msg


def _valid_text(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def _scrub(text: str, smtp: SmtpSettings) -> str:
    """``text`` without the password in any form an AUTH exchange might echo."""
    if not smtp.password:
        return text
    user = smtp.username or ""
    forms = {
        smtp.password,
        base64.b64encode(smtp.password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{smtp.password}".encode()).decode(),
    }
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(raw.split())}".strip()


def _explain(e: Exception, server: str) -> str:
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        replies = sorted({_reply(c, t) for c, t in e.recipients.values()})
        return f"SMTP server {server} refused every recipient: {'; '.join(replies)}"
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return f"SMTP server {server} rejected the login: {_reply(e.smtp_code, e.smtp_error)}"
    if isinstance(e, smtplib.SMTPSenderRefused):
        return f"SMTP server {server} refused the sender: {_reply(e.smtp_code, e.smtp_error)}"
    if isinstance(e, smtplib.SMTPResponseException):  # connect, HELO, DATA
        return f"SMTP server {server} answered {_reply(e.smtp_code, e.smtp_error)}"
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return f"SMTP server {server} does not support what was asked: {e}"
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return f"SMTP server {server} closed the connection unexpectedly"
    if isinstance(e, ConnectionRefusedError):
        return f"could not connect to SMTP server {server}: connection refused"
    if isinstance(e, TimeoutError):
        return f"SMTP server {server} did not answer in time"
    if isinstance(e, ssl.SSLError):
        return f"TLS with SMTP server {server} failed: {e.reason or e}"
    if isinstance(e, OSError):
        return f"could not connect to SMTP server {server}: {e.strerror or e}"
    return f"sending through SMTP server {server} failed: {type(e).__name__}"


def _helo_name(sender: str) -> str:
    """The EHLO name: the sender's domain (smtplib would look the host's FQDN up in DNS)."""
    _local, _at, domain = sender.rpartition("@")
    return domain.strip("<> ") or "localhost"


def send_code(domain: str, code: str, smtp: SmtpSettings, *, valid_minutes: int = 60) -> list[str]:
    """Mail ``code`` to the administrative addresses of ``domain`` in one message; returns the
    addresses the server accepted. Raises ``SmtpError`` when none was accepted or the
    server failed."""
    recipients = admin_addresses(domain)
    msg = _message(normalize(domain), code, smtp.sender, recipients, _valid_text(valid_minutes))
    server = f"{smtp.host}:{smtp.port}"
    try:
        with smtplib.SMTP(
            smtp.host, smtp.port, local_hostname=_helo_name(smtp.sender), timeout=smtp.timeout_s
        ) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username is not None:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(msg, from_addr=smtp.sender, to_addrs=recipients)
    except (smtplib.SMTPException, OSError) as e:
        raise SmtpError(_scrub(_explain(e, server), smtp)) from None
    return [r for r in recipients if r not in refused]
