"""Fixtures shared by the service tests: the application role's database, the cache backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dbops.db import Database
from dbops.services._cache import MemoryCache, QueryCache, RedisCache

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@pytest.fixture
def clean_db(clean_app_db: Database) -> Database:
    """Here the services run as the application role (``dbops_app``), under row-level security:
    what these tests prove is what runs. Raw test SQL goes through ``_helpers.as_system``."""
    return clean_app_db


@pytest.fixture
def redis_client_and_prefix() -> Iterator[tuple[Any, str]]:
    """A client of the machine's Redis and a fresh key prefix, whose keys are deleted after."""
    redis = pytest.importorskip("redis")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(
            f"no Redis server at {REDIS_HOST}:{REDIS_PORT} ({type(exc).__name__}); "
            "start redis-server to run the Redis cases"
        )
    prefix = f"dbops-test:{uuid.uuid4().hex}:"
    yield client, prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> QueryCache:
    """One cache of each backend (the test runs once per backend)."""
    if request.param == "memory":
        return MemoryCache(ttl_s=300)
    client, prefix = request.getfixturevalue("redis_client_and_prefix")
    return RedisCache(client, ttl_s=300, prefix=prefix)
