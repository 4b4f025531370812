"""Read-through query cache: in process (TTL + LRU) or Redis, with hit/miss counters.

Services cache a few hot answers (role of a user in a team, team by slug) and delete the
keys their writes make stale. Values are stored as JSON-able primitives chosen by the service.

A read-through fill races with writes: a reader loads the old answer, a writer commits and
deletes the key, then the reader stores what it loaded, stale until the TTL. Every key therefore
has a generation that ``delete`` bumps; ``cached()`` takes the generation before loading and
stores only if it is unchanged (``set_if``), so a fill that overlapped a write is dropped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cachetools import TTLCache

from dbops.telemetry.report import watch_cache

__all__ = ["CacheStats", "MemoryCache", "QueryCache", "RedisCache", "cached", "keep", "peek"]

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

    def generation(self, key: str) -> int:
        """A number that changes whenever ``key`` is deleted (taken before a load)."""

    def set_if(self, key: str, value: Any, generation: int) -> bool:
        """Store like :meth:`set`, but only if ``key`` was not deleted since ``generation``."""

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
        # Generations of recently deleted keys. An entry outlives any load (4 TTLs); if it is
        # evicted anyway, set_if sees 0 != taken generation and skips: it fails closed.
        self._generations: TTLCache[str, int] = TTLCache(maxsize=maxsize, ttl=ttl_s * 4)
        self._lock = threading.Lock()
        self._counters = _Counters()
        watch_cache(self)  # its counters go into this process's report (dbops.telemetry.report)

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(key)
        (self._counters.hit if value is not None else self._counters.miss)()
        return value

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def generation(self, key: str) -> int:
        with self._lock:
            return self._generations.get(key, 0)

    def set_if(self, key: str, value: Any, generation: int) -> bool:
        with self._lock:
            if self._generations.get(key, 0) != generation:
                return False
            self._data[key] = value
            return True

    def delete(self, keys: Iterable[str]) -> None:
        n = 0
        with self._lock:
            for key in keys:
                n += self._data.pop(key, None) is not None
                self._generations[key] = self._generations.get(key, 0) + 1
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

    #: SET the value only if the key's generation is still the one read before the load.
    _SET_IF_LUA = """
    if (redis.call('GET', KEYS[2]) or '0') == ARGV[2] then
        return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
    end
    return false
    """

    def __init__(self, client: Any, *, ttl_s: float = 30.0, prefix: str = "dbops:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._counters = _Counters()
        self._set_if = client.register_script(self._SET_IF_LUA)
        watch_cache(self)

    def get(self, key: str) -> Any | None:
        raw = self._redis.get(self._prefix + key)
        if raw is None:
            self._counters.miss()
            return None
        self._counters.hit()
        return json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._redis.set(self._prefix + key, json.dumps(value), px=self._ttl_ms)

    def generation(self, key: str) -> int:
        raw = self._redis.get(self._prefix + "gen:" + key)
        return int(raw) if raw is not None else 0

    def set_if(self, key: str, value: Any, generation: int) -> bool:
        stored = self._set_if(
            keys=[self._prefix + key, self._prefix + "gen:" + key],
            args=[json.dumps(value), str(generation), self._ttl_ms],
        )
        return stored is not None

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(*(self._prefix + k for k in keys))
        for key in keys:
            gen_key = self._prefix + "gen:" + key
            pipe.incr(gen_key)
            pipe.pexpire(gen_key, self._ttl_ms * 4)
        removed = pipe.execute()[0]
        self._counters.invalidated(int(removed))

    def stats(self) -> CacheStats:
        return CacheStats(
            "redis", self._counters.hits, self._counters.misses, self._counters.invalidations, None
        )


def peek(cache: QueryCache, key: str, decode: Callable[[Any], T]) -> tuple[bool, T | None]:
    """What ``key`` holds: ``(True, answer)`` (``None``: the row is absent) or ``(False, None)``.

    Nothing is loaded.
    """
    stored = cache.get(key)
    if stored is None:
        return False, None
    return True, None if stored == _ABSENT else decode(stored)


def keep(
    cache: QueryCache, key: str, value: T | None, encode: Callable[[T], Any], generation: int
) -> None:
    """Store a loaded answer (``None``: absent) unless ``key`` was invalidated since then.

    ``generation`` is taken before the load: a write that committed meanwhile wins.
    """
    cache.set_if(key, _ABSENT if value is None else encode(value), generation)


def cached(
    cache: QueryCache | None,
    key: str,
    load: Callable[[], T | None],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
    *,
    store_absent: bool = True,
) -> T | None:
    """Read-through: the cached answer, or ``load()`` stored (absent rows are cached too).

    The stored answer is shared by every caller of ``key``, whoever the actor: a caller that
    may not see every row checks its permission on the answer, after this lookup. A load that
    sees fewer rows than others (one filtered by the actor's permissions) passes
    ``store_absent=False``: its "no row" is this actor's answer, not everyone's, and is not
    stored; a row it does find is the same for all and is stored.
    """
    if cache is None:
        return load()
    found, answer = peek(cache, key, decode)
    if found:
        return answer
    generation = cache.generation(key)
    value = load()
    if value is not None or store_absent:
        keep(cache, key, value, encode, generation)
    return value
