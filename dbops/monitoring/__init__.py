"""Read-only: collectors and snapshots (today `dbops status`; later snapshots and checks)."""
