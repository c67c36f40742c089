"""Keyset page markers ("<timestamp>|<uuid>"): where a page ended, to start the next after it.

Stable under inserts (no OFFSET), and opaque enough for clients to pass back unchanged.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal, tuple_

from messaging.errors import ServiceError


def page_marker(at: datetime, row_id: Any) -> str:
    return f"{at.isoformat()}|{row_id}"


def after_marker(at_column: Any, id_column: Any, marker: str, field: str = "before",
                 descending: bool = True) -> ColumnElement[bool]:
    """The condition for rows past ``marker`` in (at, id) order; a bad marker is a 422."""
    try:
        at, row_id = marker.rsplit("|", 1)
        bound = tuple_(literal(datetime.fromisoformat(at)), literal(uuid.UUID(row_id)))
    except ValueError:
        raise ServiceError("validation_failed", "Not a valid page marker.", 422,
                           errors={field: ["Not a page marker."]}) from None
    key = tuple_(at_column, id_column)
    return key < bound if descending else key > bound
