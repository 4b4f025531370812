"""The application's statement latency histograms and error counters (process reports)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from dbops.monitoring.snapshot import (
    AppStat,
)


def le_label(bound: float) -> str:
    """A histogram bucket's ``le`` label as the Prometheus client writes it (``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def app_statement_metrics(app: AppStat) -> list[Metric]:
    """The service statements' latency histograms and error counters (label: statement name).

    ``dbops_app_statement_duration_seconds{statement}`` (histogram, failed calls included)
    and ``dbops_app_statement_errors_total{statement, sqlstate_class}``. Label values are
    statement names and SQLSTATE classes only, both bounded sets.
    """
    return statement_families([(app, {})])


def statement_families(apps: Sequence[tuple[AppStat, dict[str, str]]]) -> list[Metric]:
    """One histogram and one error family for ``apps``, each with its ``who`` labels."""
    who_labels = list(apps[0][1]) if apps else []
    duration = HistogramMetricFamily(
        "dbops_app_statement_duration_seconds",
        "Service statement latency in the application process (failed calls included).",
        labels=[*who_labels, "statement"],
    )
    errors = CounterMetricFamily(
        "dbops_app_statement_errors",
        "Failed service statements by SQLSTATE class ('other': no SQLSTATE).",
        labels=[*who_labels, "statement", "sqlstate_class"],
    )
    for app, who in apps:
        values = list(who.values())
        for stmt in app.statements:
            buckets = [
                (le_label(bound), float(n))
                for bound, n in zip(app.buckets_s, stmt.bucket_counts, strict=True)
            ]
            buckets.append(("+Inf", float(stmt.count)))
            duration.add_metric([*values, stmt.name], buckets, stmt.sum_s)
            for err in stmt.errors:
                errors.add_metric([*values, stmt.name, err.key or "other"], float(err.count))
    return [duration, errors]
