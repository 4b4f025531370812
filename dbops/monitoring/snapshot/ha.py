"""High availability: the Patroni cluster's members as Patroni itself reports them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HaMember", "HaStat"]

#: Member states in which a node serves (a leader ``running``, a replica ``streaming``, or
#: ``running`` in Patroni 3.0).
SERVING = ("running", "streaming")


@dataclass(frozen=True)
class HaMember:
    """One node of the cluster (Patroni's ``GET /cluster``)."""

    name: str
    #: ``leader``, ``sync_standby``, ``replica`` (``standby_leader`` in a standby cluster).
    role: str
    #: ``running``, ``streaming``, ``starting``, ``stopped``, ``crashed``, ...
    state: str
    host: str | None
    port: int | None
    timeline: int | None
    #: WAL bytes the member is behind the leader (None: the leader, or unknown).
    lag_bytes: int | None

    @property
    def serving(self) -> bool:
        """Whether the node is up and doing its job (the leader leads, a replica follows)."""
        return self.state in SERVING

    @property
    def address(self) -> str | None:
        """``host:port``, as the snapshot's ``server.address`` names the node it reached."""
        return None if self.host is None or self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HaStat:
    """The cluster Patroni manages (``DBOPS_MONITOR_PATRONI_URL``)."""

    members: tuple[HaMember, ...]
    #: The REST endpoint that answered.
    source: str
    scope: str | None = None

    def leader(self) -> HaMember | None:
        """The member that leads and runs (None during a failover, or with no leader)."""
        return next((m for m in self.members if m.role == "leader" and m.serving), None)

    def serving(self) -> int:
        """Members up and doing their job."""
        return sum(1 for m in self.members if m.serving)
