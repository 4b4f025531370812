"""Access events (failed logins, refused connections) as counters by kind."""

from __future__ import annotations

from collections.abc import Iterable

from dbops.exporter.families._base import Families

#: Help of ``dbops_access_events_total`` (the same from the snapshot and from the app collector).
ACCESS_EVENTS_DOC = (
    "Access events: refused logins (login_failed), denials by row-level security (rls_denied) "
    "or a missing privilege (privilege_denied); app also forbidden and not_found service calls. "
    "source=app: this process's service calls; source=server: the server log."
)


def access_event_metrics(
    f: Families, source: str, counts: Iterable[tuple[str, int]], **who: str
) -> None:
    """Access event counters by kind into ``f``."""
    for kind, count in counts:
        f.counter("dbops_access_events", ACCESS_EVENTS_DOC, count, kind=kind, source=source, **who)
