"""Benchmarks: scripts run as ``uv run python -m bench.<name>``; see docs/benchmarks.md."""
