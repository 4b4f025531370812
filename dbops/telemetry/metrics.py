"""The process's own statement metrics: latency histograms and errors by SQLSTATE class.

A process-wide, thread-safe recorder with no dependency beyond the standard library. Each
*statement name* (a service call such as ``"users.get_by_email"``; never SQL text, so label
values stay bounded) owns a fixed-bucket latency histogram (count, sum, bucket counts) and its
error counts by SQLSTATE class (``"23"`` integrity, ``"40"`` serialization/deadlock, ``"57"``
operator intervention, ... and ``"other"`` for failures that carry no SQLSTATE, such as a
pool timeout or a bug).

:func:`timed_methods` instruments every public method of a service class at import time; each
method then holds its own :class:`StatementSeries`, so recording a call costs two
``perf_counter_ns`` reads, a ``bisect`` and a few increments under an uncontended per-name
lock (no dict lookup). :func:`statement_stats` reads everything as frozen data for the
monitoring snapshot and the Prometheus exporter. A failed call is also handed to
:func:`dbops.telemetry.access.record_failure`, which counts and logs the access events
(failed sign-ins, denials, hidden rows) among the failures; a successful call costs nothing
more.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from types import FunctionType
from typing import Any, TypeVar

from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.telemetry.access import AccessEvents, driver_error, record_failure

__all__ = [
    "BUCKETS_S",
    "MAX_STATEMENTS",
    "OTHER",
    "OVERFLOW_NAME",
    "STATEMENTS",
    "StatementMetrics",
    "StatementSeries",
    "StatementSnapshot",
    "error_class",
    "statement_stats",
    "timed",
    "timed_methods",
]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

#: Upper bounds of the latency buckets, in seconds (the ``+Inf`` bucket is implicit).
BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: Error class of a failure that carries no SQLSTATE (pool timeout, unreachable server, bug).
OTHER = "other"
#: Most distinct statement names one recorder keeps; later names share :data:`OVERFLOW_NAME`.
MAX_STATEMENTS = 500
#: The name every statement past :data:`MAX_STATEMENTS` is recorded under.
OVERFLOW_NAME = "other"

#: Service outcomes that answer a call rather than fail it, when no database error caused them.
_ANSWERS = (NotFound, Forbidden, InvalidInput, Conflict)
_SQLSTATE_CLASS_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: How far along ``__cause__``/``__context__`` a SQLSTATE is looked for.
_MAX_CHAIN = 8


def error_class(exc: BaseException) -> str | None:
    """The SQLSTATE class to count ``exc`` under, or ``None`` when it is no failure.

    The first SQLSTATE found on ``exc`` or along its ``__cause__``/``__context__`` chain (a
    :class:`DbopsError` translated from a driver error keeps the driver error as its cause;
    a SQLAlchemy error keeps it as ``.orig``) gives its first two characters. Without one:
    ``NotFound``, ``Forbidden``, ``InvalidInput`` and ``Conflict`` are answers the service gave
    on purpose (``None``, not counted), and so are ``KeyboardInterrupt``/``SystemExit``;
    any other exception is ``"other"``.
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            break
        sqlstate = driver_error(seen)[1]
        if sqlstate is not None:
            return _class_of(sqlstate)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, _ANSWERS) or not isinstance(exc, Exception):
        return None  # an answer, or KeyboardInterrupt/SystemExit: no failure of the call
    return OTHER


def _class_of(sqlstate: str) -> str:
    code = sqlstate[:2].upper()
    if len(code) == 2 and all(c in _SQLSTATE_CLASS_CHARS for c in code):
        return code
    return OTHER


@dataclass(frozen=True)
class StatementSnapshot:
    """One statement name's histogram and errors at one moment (counts since process start).

    ``bucket_counts`` are cumulative, one per bound of ``BUCKETS_S`` (``value <= bound``);
    ``count`` is the ``+Inf`` bucket. Failed calls are timed too, so ``count`` includes them.
    """

    name: str
    count: int
    sum_s: float
    bucket_counts: tuple[int, ...]
    errors: tuple[tuple[str, int], ...]


class StatementSeries:
    """The histogram and error counts of one statement name (thread-safe)."""

    __slots__ = ("_bounds_ns", "_counts", "_errors", "_lock", "_sum_ns", "name")

    def __init__(self, name: str, bounds_ns: tuple[int, ...]) -> None:
        self.name = name
        self._bounds_ns = bounds_ns
        self._counts = [0] * (len(bounds_ns) + 1)
        self._sum_ns = 0
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def observe(self, elapsed_ns: int, error: str | None = None) -> None:
        """Count one call that took ``elapsed_ns``, failed with SQLSTATE class ``error``."""
        index = bisect_left(self._bounds_ns, elapsed_ns)
        with self._lock:
            self._counts[index] += 1
            self._sum_ns += elapsed_ns
            if error is not None:
                self._errors[error] = self._errors.get(error, 0) + 1

    def snapshot(self) -> StatementSnapshot:
        """The counts so far, as frozen data."""
        with self._lock:
            counts = list(self._counts)
            sum_ns = self._sum_ns
            errors = tuple(sorted(self._errors.items()))
        cumulative: list[int] = []
        running = 0
        for n in counts:
            running += n
            cumulative.append(running)
        return StatementSnapshot(
            name=self.name,
            count=running,
            sum_s=sum_ns / 1e9,
            bucket_counts=tuple(cumulative[:-1]),
            errors=errors,
        )


class StatementMetrics:
    """Statement series by name, at most ``max_statements`` of them.

    Args:
        buckets_s: upper bounds of the latency buckets in seconds, ascending.
        max_statements: the cap on distinct names; past it every new name is recorded under
            :data:`OVERFLOW_NAME`, so a caller that passes unbounded names cannot grow memory
            or the exporter's series without limit.
    """

    def __init__(
        self, buckets_s: tuple[float, ...] = BUCKETS_S, *, max_statements: int = MAX_STATEMENTS
    ) -> None:
        if list(buckets_s) != sorted(set(buckets_s)) or not buckets_s:
            raise ValueError("buckets_s: must be ascending and distinct")
        self.buckets_s = tuple(buckets_s)
        self._bounds_ns = tuple(round(b * 1e9) for b in buckets_s)
        self._max = max_statements
        self._series: dict[str, StatementSeries] = {}
        self._lock = threading.Lock()

    def series(self, name: str) -> StatementSeries:
        """The series of ``name``, created on first use (the overflow series past the cap)."""
        found = self._series.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._series.get(name)
            if found is None:
                if len(self._series) >= self._max and name != OVERFLOW_NAME:
                    found = self._series.get(OVERFLOW_NAME)
                    if found is not None:
                        return found
                    name = OVERFLOW_NAME
                found = StatementSeries(name, self._bounds_ns)
                self._series[name] = found
            return found

    def record(self, name: str, elapsed_s: float, error: str | None = None) -> None:
        """Count one call of ``name`` (for code that times itself; :func:`timed` is quicker)."""
        self.series(name).observe(round(elapsed_s * 1e9), error)

    def snapshot(self) -> tuple[StatementSnapshot, ...]:
        """Every statement's counts, sorted by name."""
        with self._lock:
            series = sorted(self._series.values(), key=lambda s: s.name)
        return tuple(s.snapshot() for s in series)


#: The process-wide recorder the services write to.
STATEMENTS = StatementMetrics()


def statement_stats(metrics: StatementMetrics | None = None) -> tuple[StatementSnapshot, ...]:
    """Every statement's histogram and errors from ``metrics`` (default: this process's)."""
    return (metrics or STATEMENTS).snapshot()


def timed(
    name: str, *, metrics: StatementMetrics | None = None, access: AccessEvents | None = None
) -> Callable[[F], F]:
    """Decorate a function so each call is timed and recorded under ``name``.

    Exceptions are counted by :func:`error_class`, handed to
    :func:`dbops.telemetry.access.record_failure` (into ``access``, default: the process
    recorder) and raised unchanged.
    """
    series = (metrics or STATEMENTS).series(name)

    def decorate(fn: F) -> F:
        observe = series.observe

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter_ns()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                observe(perf_counter_ns() - started, error_class(exc))
                record_failure(name, exc, args, kwargs, events=access)
                raise
            observe(perf_counter_ns() - started)
            return result

        wrapper.__dbops_statement__ = name  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def timed_methods(
    prefix: str, *, metrics: StatementMetrics | None = None, access: AccessEvents | None = None
) -> Callable[[C], C]:
    """Class decorator: time every public method of the class as ``"<prefix>.<method>"``.

    Only plain functions defined on the class itself are wrapped (not ``_private`` ones,
    static/class methods or properties), so the names are fixed when the class is defined.
    """

    def decorate(cls: C) -> C:
        for attr, value in list(vars(cls).items()):
            if attr.startswith("_") or not isinstance(value, FunctionType):
                continue
            setattr(cls, attr, timed(f"{prefix}.{attr}", metrics=metrics, access=access)(value))
        return cls

    return decorate
