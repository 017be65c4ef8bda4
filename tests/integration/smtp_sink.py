"""An SMTP server's handler for tests (aiosmtpd): keeps every message it receives."""

from __future__ import annotations

from email import message_from_string
from typing import Any


class Mailbox:
    """Give it to ``aiosmtpd.controller.Controller``; ``port`` is for the test to note where
    the controller listens."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []  # (recipients, the whole message)
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"

    def subjects(self, about: str = "") -> list[str]:
        """The subjects of the messages whose text holds ``about``."""
        return [
            str(message_from_string(text)["Subject"])
            for _to, text in self.messages
            if about in text
        ]
