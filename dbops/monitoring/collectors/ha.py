"""Patroni: its view of the cluster (``GET /cluster`` on its REST API), no SQL.

``DBOPS_MONITOR_PATRONI_URL`` lists the nodes' REST endpoints separated by spaces; the first
that answers gives every member (each node reports the whole cluster from the DCS), so the
view survives the node it would otherwise ask being down.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from dbops.config import Settings
from dbops.monitoring._fetch import CollectorUnavailable
from dbops.monitoring.snapshot import HaMember, HaStat

__all__ = ["collect_ha"]


def collect_ha(settings: Settings) -> HaStat | None:
    """The members of the Patroni cluster; None when no REST URL is configured."""
    urls = (settings.monitor.patroni_url or "").split()
    if not urls:
        return None
    timeout = max(settings.monitor.collector_timeout_ms / 1000, 0.5)
    failures = []
    for url in urls:
        endpoint = url.rstrip("/") + "/cluster"
        try:
            with urllib.request.urlopen(endpoint, timeout=timeout) as response:  # noqa: S310
                document = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        return HaStat(
            members=tuple(_member(m) for m in document.get("members", [])),
            source=url,
            scope=document.get("scope"),
        )
    raise CollectorUnavailable(
        "no Patroni REST endpoint answered: " + "; ".join(failures),
        "check DBOPS_MONITOR_PATRONI_URL (the nodes' restapi addresses, space-separated)",
    )


def _member(raw: dict[str, Any]) -> HaMember:
    lag = raw.get("lag")
    return HaMember(
        name=str(raw.get("name")),
        role=str(raw.get("role")),
        state=str(raw.get("state")),
        host=raw.get("host"),
        port=int(raw["port"]) if isinstance(raw.get("port"), int) else None,
        timeline=int(raw["timeline"]) if isinstance(raw.get("timeline"), int) else None,
        lag_bytes=int(lag) if isinstance(lag, int) else None,
    )
