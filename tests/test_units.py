"""The one byte format every consumer writes (CLI tables, dashboard, run summaries)."""

from __future__ import annotations

import pytest

from dbops.units import format_bytes


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 kB"),
        (1536, "1.5 kB"),
        (1024**2 - 1, "1024.0 kB"),  # one byte short of a MB, rounded, not promoted
        (5 * 1024**3, "5.0 GB"),
        (2 * 1024**4, "2.0 TB"),
        (3 * 1024**5, "3072.0 TB"),
        (-2048, "-2.0 kB"),
    ],
)
def test_binary_units_one_decimal_above_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_unknown_is_the_callers_word() -> None:
    assert format_bytes(None) == "-"
    assert format_bytes(None, unknown="unknown") == "unknown"
