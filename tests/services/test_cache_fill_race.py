"""A read-through fill that overlaps a write must not store the answer it loaded before it."""

from __future__ import annotations

from dbops.services._cache import QueryCache, cached


def _identity(value: str) -> str:
    return value


def test_fill_overlapping_a_delete_is_dropped(cache: QueryCache) -> None:
    def load_then_concurrent_write() -> str:
        value = "old"  # what the reader saw before the writer committed
        cache.delete(["k"])  # the writer commits and invalidates while the reader is loading
        return value

    assert cached(cache, "k", load_then_concurrent_write, _identity, _identity) == "old"
    # The stale fill was not stored: the next read loads again and gets the new answer.
    assert cached(cache, "k", lambda: "new", _identity, _identity) == "new"
    assert cached(cache, "k", lambda: "not called", _identity, _identity) == "new"


def test_fill_without_a_write_is_stored(cache: QueryCache) -> None:
    assert cached(cache, "k", lambda: "v1", _identity, _identity) == "v1"
    assert cached(cache, "k", lambda: "loaded again", _identity, _identity) == "v1"
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 1)


def test_absent_rows_are_cached_and_invalidated(cache: QueryCache) -> None:
    assert cached(cache, "gone", lambda: None, _identity, _identity) is None
    assert cached(cache, "gone", lambda: "should not load", _identity, _identity) is None
    cache.delete(["gone"])
    assert cached(cache, "gone", lambda: "created", _identity, _identity) == "created"
