"""Collectors: one module per topic, one function per catalog query, rows as dataclasses."""
