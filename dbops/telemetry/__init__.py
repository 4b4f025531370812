"""In-process instrumentation: what this process records about itself, below everything else.

- :mod:`dbops.telemetry.metrics`: the services' statement latency histograms and errors;
- :mod:`dbops.telemetry.access`: access events (failed sign-ins, denials) counted and logged;
- :mod:`dbops.telemetry.report`: the process's pool, cache and statements, reported into the
  database every few seconds for the dashboard and the exporter (migration 0011).

The pool (:mod:`dbops.db.engine`) and the services feed it; monitoring and the exporter read it.
"""
