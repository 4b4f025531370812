"""How dbops writes quantities for people: one byte format for the CLI, the dashboard, the notes.

Standard library only: the CLI, the dashboard and the monitoring checks all import it.
"""

from __future__ import annotations

__all__ = ["format_bytes"]

_UNITS = ("B", "kB", "MB", "GB")


def format_bytes(size: float | None, *, unknown: str = "-") -> str:
    """``size`` in binary units: ``512 B``, ``1.5 kB`` ... ``2.0 TB`` (one decimal above bytes).

    Negative sizes (a plan that grows a table) keep their sign; ``None`` is ``unknown``.
    """
    if size is None:
        return unknown
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
