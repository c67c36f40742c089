"""A real SMTP server (aiosmtpd) the tests read mail from, and can make misbehave."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property

from aiosmtpd.controller import Controller

from harness.infra import free_port, wait_for


@dataclass
class ReceivedMail:
    envelope_to: list[str]
    raw: bytes  # as the server received it
    received_at: float = 0.0  # time.time() when the server accepted it

    @cached_property
    def message(self) -> EmailMessage:
        # Parsed when a test reads it, not while the server accepts it: the modern parser
        # costs milliseconds a message, CPU the benchmarks would take from the system.
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.scripted_replies: list[str] = []  # e.g. ["451 4.3.0 try later"], used in order
        self.refused_recipients: set[str] = set()  # 550 at RCPT: the address bounces
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_RCPT(self, server: object, session: object, envelope: object,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refused_recipients:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self._lock:
            if self.scripted_replies:
                return self.scripted_replies.pop(0)
            self.messages.append(ReceivedMail(list(envelope.rcpt_tos), envelope.content,
                                              time.time()))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self.messages if address in m.envelope_to]

    def wait_for_mail_to(self, address: str, count: int = 1, timeout: float = 30.0
                         ) -> list[ReceivedMail]:
        wait_for(lambda: len(self.to(address)) >= count, timeout, message=f"mail to {address}")
        return self.to(address)
