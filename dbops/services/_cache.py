"""Read-through query cache: in process (TTL + LRU) or Redis, with hit/miss counters.

Services cache a few hot answers (role of a user in a team, team by slug) and delete the
keys their writes make stale. Values are stored as JSON-able primitives chosen by the service.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cachetools import TTLCache

__all__ = ["CacheStats", "MemoryCache", "QueryCache", "RedisCache", "cached"]

T = TypeVar("T")

#: Stored for "the database said: no such row", so misses of absent rows are cached too.
_ABSENT = {"__absent__": True}


@dataclass(frozen=True)
class CacheStats:
    """Counters for the monitoring snapshot."""

    backend: str
    hits: int
    misses: int
    invalidations: int
    size: int | None


class QueryCache(Protocol):
    """What services need from a cache."""

    def get(self, key: str) -> Any | None:
        """The stored value, or None when absent/expired."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) under ``key`` for the cache's TTL."""

    def delete(self, keys: Iterable[str]) -> None:
        """Drop ``keys``; called by every write that changes their answer."""

    def stats(self) -> CacheStats:
        """Hit/miss/invalidation counters."""


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def hit(self) -> None:
        with self._lock:
            self.hits += 1

    def miss(self) -> None:
        with self._lock:
            self.misses += 1

    def invalidated(self, n: int) -> None:
        with self._lock:
            self.invalidations += n


class MemoryCache:
    """Per-process cache: at most ``maxsize`` keys (LRU evicted first), ``ttl_s`` each."""

    def __init__(self, *, maxsize: int = 10_000, ttl_s: float = 30.0) -> None:
        self._data: TTLCache[str, Any] = TTLCache(maxsize=maxsize, ttl=ttl_s)
        self._lock = threading.Lock()
        self._counters = _Counters()

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(key)
        (self._counters.hit if value is not None else self._counters.miss)()
        return value

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def delete(self, keys: Iterable[str]) -> None:
        n = 0
        with self._lock:
            for key in keys:
                n += self._data.pop(key, None) is not None
        self._counters.invalidated(n)

    def clear(self) -> None:
        """Drop everything (tests, admin)."""
        with self._lock:
            self._data.clear()

    def stats(self) -> CacheStats:
        return CacheStats(
            "memory",
            self._counters.hits,
            self._counters.misses,
            self._counters.invalidations,
            len(self._data),
        )


class RedisCache:
    """Shared cache in Redis (values as JSON, expiry by Redis), for several processes."""

    def __init__(self, client: Any, *, ttl_s: float = 30.0, prefix: str = "dbops:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._counters = _Counters()

    def get(self, key: str) -> Any | None:
        raw = self._redis.get(self._prefix + key)
        if raw is None:
            self._counters.miss()
            return None
        self._counters.hit()
        return json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._redis.set(self._prefix + key, json.dumps(value), px=self._ttl_ms)

    def delete(self, keys: Iterable[str]) -> None:
        names = [self._prefix + k for k in keys]
        if names:
            self._counters.invalidated(int(self._redis.delete(*names)))

    def stats(self) -> CacheStats:
        return CacheStats(
            "redis", self._counters.hits, self._counters.misses, self._counters.invalidations, None
        )


def cached(
    cache: QueryCache | None,
    key: str,
    load: Callable[[], T | None],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T | None:
    """Read-through: the cached answer, or ``load()`` stored (absent rows are cached too)."""
    if cache is None:
        return load()
    stored = cache.get(key)
    if stored is not None:
        return None if stored == _ABSENT else decode(stored)
    value = load()
    cache.set(key, _ABSENT if value is None else encode(value))
    return value
