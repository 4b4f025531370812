"""Shared plumbing of the services: typed fetches, pages and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import RowFactory

from dbops.errors import InvalidInput

__all__ = ["Page", "decode_cursor", "encode_cursor", "fetch_all", "fetch_one"]

T = TypeVar("T")

Query = str | sql.Composed | sql.SQL
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one (None: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None


def fetch_one(
    conn: psycopg.Connection[Any], query: Query, row: RowFactory[T], params: Params
) -> T | None:
    """Run ``query`` and return its first row built by ``row`` (None when no row)."""
    with conn.cursor(row_factory=row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def fetch_all(
    conn: psycopg.Connection[Any], query: Query, row: RowFactory[T], params: Params
) -> list[T]:
    """Run ``query`` and return every row built by ``row``."""
    with conn.cursor(row_factory=row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The opaque cursor after the row with key ``(created_at, row_id)``."""
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The key a cursor from :func:`encode_cursor` points after; InvalidInput if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        key = (datetime.fromisoformat(created_at), uuid.UUID(row_id))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor returned by a previous page", "cursor") from exc
    if key[0].tzinfo is None:
        raise InvalidInput("cursor: not a cursor returned by a previous page", "cursor")
    return key


def page_of(rows: Sequence[T], limit: int, key: Any) -> Page[T]:
    """A page from ``limit + 1`` fetched rows; ``key(row)`` gives ``(created_at, id)``."""
    items = tuple(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(*key(items[-1])) if more else None)
