"""Test configuration: fixtures live in tests/fixtures/ and are loaded as plugins."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.bouncer",
    "tests.fixtures.monitoring",
    "tests.fixtures.patroni",
    "tests.fixtures.snapshots",
]
