"""What every section's families share: the family list with its naming rules, units, text caps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    """A gauge family with one unlabelled sample."""
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


class Families:
    """Builds metric families by name, adding one sample at a time."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def _get(self, kind: str, name: str, doc: str, labels: tuple[str, ...]) -> Any:
        family = self._families.get(name)
        if family is None:
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=list(labels))
            elif kind == "info":
                family = InfoMetricFamily(name, doc, labels=list(labels))
            else:
                family = GaugeMetricFamily(name, doc, labels=list(labels))
            self._families[name] = family
        return family

    def gauge(self, name: str, doc: str, value: float | None, **labels: str) -> None:
        """One gauge sample (skipped when ``value`` is unknown)."""
        if value is None:
            return
        self._get("gauge", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def counter(self, name: str, doc: str, value: float | None, **labels: str) -> None:
        """One counter sample; ``name`` without ``_total`` (skipped when unknown)."""
        if value is None:
            return
        self._get("counter", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def info(self, name: str, doc: str, value: dict[str, str], **labels: str) -> None:
        """One info sample; ``name`` without ``_info``."""
        self._get("info", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def timestamp(self, name: str, doc: str, value: datetime | None, **labels: str) -> None:
        """A timestamp as Unix seconds (skipped when unknown)."""
        if value is not None:
            self.gauge(name, doc, value.timestamp(), **labels)

    def all(self) -> list[Metric]:
        """Every family built so far."""
        return list(self._families.values())


def ms_to_s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def truncate(text: str | None, chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= chars else text[: chars - 1] + "…"
