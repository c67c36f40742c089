"""Input fields every service's wire formats share: strict where marshmallow is lenient.

- ``StrictBoolean``: JSON ``true``/``false`` only. marshmallow's Boolean also takes ``"yes"``,
  ``"on"``, ``0`` and ``1``; a client that sends those has a bug we should tell it about.
- ``SingleLine``: text for one line (names, address lines, titles). Control characters (CR and
  LF above all) are refused: in an email header, a CSV cell, a label or a log line they split
  or forge lines.
- ``EmailAddress``: trimmed, lower-cased, an internationalised domain stored in its ASCII
  (punycode) form so one mailbox has one spelling, and no IP-literal domains (``a@[10.0.0.1]``
  would make our mail server talk to an address of the sender's choosing).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from marshmallow import ValidationError, fields, validate

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(value: str) -> bool:
    return bool(_CONTROL.search(value))


class StrictBoolean(fields.Boolean):
    default_error_messages = {"invalid": "Not a valid boolean: use true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class SingleLine(fields.String):
    default_error_messages = {"control": "Must be one line, without control characters."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text):
            raise self.make_error("control")
        return text


def normalise_email_address(address: str) -> str:
    """The one spelling we store: trimmed, lower case, the domain in punycode.

    Raises ValueError for what cannot be a mailbox on the public internet."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("Not a valid email address.")
    if domain.startswith("[") or re.fullmatch(r"[0-9.]+", domain):
        raise ValueError("Use an email address with a domain name, not an IP address.")
    if has_control_characters(local):
        raise ValueError("Not a valid email address.")
    try:
        ascii_domain = unicodedata.normalize("NFC", domain).lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("The email's domain is not a valid domain name.") from None
    if "." not in ascii_domain:
        raise ValueError("The email's domain is not a valid domain name.")
    return f"{local.lower()}@{ascii_domain}"


def normalise_email_address_or_none(address: object) -> str | None:
    """``normalise_email_address``, or None for what is not an email at all."""
    if not isinstance(address, str):
        return None
    try:
        return normalise_email_address(address)
    except ValueError:
        return None


class EmailAddress(fields.Email):
    """An email as the services store it (see ``normalise_email_address``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(max=254))
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            normalised = normalise_email_address(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        # marshmallow's own check on the ASCII form (an IDN fails it in Unicode).
        return super()._deserialize(normalised, attr, data, **kwargs)
