"""The ``/metrics`` HTTP endpoint: the WSGI app, the threading server, :func:`serve`."""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgi_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    Metric,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.samples import Sample

from dbops.config import Settings
from dbops.db import Database, open_database

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
from dbops.exporter.collector import SnapshotCollector
from dbops.exporter.source import Scrape, SnapshotSource


class _Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Part(Metric):
    """A family with only some of its samples (``/metrics?name[]=...``)."""

    def __init__(self, family: Metric, samples: list[Sample]) -> None:
        super().__init__(family.name, family.documentation, family.type, family.unit)
        self.samples = samples


class _Exposed:
    """What the exposition reads: the registry's families, optionally only some samples.

    ``/metrics?name[]=...`` restricts by sample name here (prometheus_client's own restriction
    finds nothing: the collectors describe no names in advance).
    """

    def __init__(self, registry: _Collects, names: frozenset[str] | None = None) -> None:
        self._registry = registry
        self._names = names

    def collect(self) -> Iterable[Metric]:
        """The families, restricted to the names asked for."""
        families = list(self._registry.collect())
        if self._names is None:
            return families
        kept: list[Metric] = []
        for family in families:
            samples = [x for x in family.samples if x.name in self._names]
            if samples:
                kept.append(_Part(family, samples))
        return kept

    def restricted_registry(self, names: Iterable[str]) -> _Exposed:
        """Only the samples called ``names`` (``dbops_access_events_total``, ...)."""
        return _Exposed(self._registry, frozenset(names))


class _Static:
    """Families already built, as the encoders want them (something with ``collect``)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


#: The end marker of the OpenMetrics format: once, at the end of the whole body.
_EOF = b"# EOF\n"


class _MetricsApp:
    """``GET /metrics``: the families of one scrape, the carried slow ones rendered once.

    Rendering is most of a scrape's cost in Python (prometheus_client formats and checks every
    sample), and the slow parts' families (statements, indexes, tables, data) are most of the
    samples. While their parts are carried unchanged (the same :attr:`Scrape.slow_key`), their
    bytes in the negotiated format are reused; everything else is rendered per scrape. The
    body is the one prometheus_client would give, families in another order. Restricted
    scrapes (``name[]``) and other methods go to prometheus_client's own app.
    """

    def __init__(self, collector: SnapshotCollector, fallback: WSGIApplication) -> None:
        self._collector = collector
        self._fallback = fallback
        self._rendered: tuple[object, str, bytes] | None = None
        #: How many times the slow families were rendered (tests).
        self.slow_renders = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "name[]" in parse_qs(
            environ.get("QUERY_STRING", "")
        ):
            body: Iterable[bytes] = self._fallback(environ, start_response)
            return body
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        rendered = self._rendered
        held = rendered[0] if rendered is not None and rendered[1] == content_type else None
        scrape = self._collector.collect_parts(have=held)
        head = encoder(_Static(scrape.fast))
        tail = self._slow(scrape, encoder, content_type)
        if head.endswith(_EOF) and tail.endswith(_EOF):
            head = head[: -len(_EOF)]
        output = head + tail
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    def _slow(self, scrape: Scrape, encoder: Callable[[Any], bytes], content_type: str) -> bytes:
        rendered = self._rendered
        if scrape.slow_key is not None and rendered is not None:
            key, kind, output = rendered
            if key == scrape.slow_key and kind == content_type:
                return output
        if scrape.slow is None:  # held by a render another scrape replaced meanwhile
            scrape = self._collector.collect_parts()
        output = encoder(_Static(scrape.slow or []))
        self.slow_renders += 1
        if scrape.slow_key is not None:
            self._rendered = (scrape.slow_key, content_type, output)
        return output


def make_app(
    registry: CollectorRegistry, collector: SnapshotCollector | None = None
) -> WSGIApplication:
    """WSGI app: ``/metrics`` (and ``/``) from ``registry``, ``/healthz`` (no database).

    With ``collector`` (the registry's snapshot collector), full scrapes go through
    :class:`_MetricsApp`, which renders the carried slow families once.
    """
    metrics: WSGIApplication = make_wsgi_app(_Exposed(registry))
    if collector is not None:
        metrics = _MetricsApp(collector, metrics)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path in ("/", "/metrics"):
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


class ExporterServer:
    """The HTTP server of the exporter; :meth:`start` runs it in a thread, :meth:`close` stops."""

    def __init__(
        self,
        server: WSGIServer,
        registry: CollectorRegistry,
        *,
        source: SnapshotSource | None = None,
        db: Database | None = None,
    ) -> None:
        self._server = server
        self.registry = registry
        self.source = source
        self._db = db
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port (the free one picked when 0 was asked)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (from another thread) or Ctrl-C."""
        self._server.serve_forever()

    def start(self) -> ExporterServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dbops-exporter-http", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, then close the source and the database this server opened."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        if self.source is not None:
            self.source.close()
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> ExporterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 9187,
    db: Database | None = None,
    source: SnapshotSource | None = None,
) -> ExporterServer:
    """An exporter server, bound but not serving yet (port 0 picks a free port).

    Args:
        settings: exporter budget, cache interval and series limits; the database when
            neither ``db`` nor ``source`` is given (then the server opens it as the monitor
            role, ``dsn_for(settings, "monitor")``, and closes it).
        host: listen address; loopback by default (put a proxy in front to expose it).
        port: listen port (9187 is postgres_exporter's; pass another to run both).
        db: an open database to snapshot (not closed by the server).
        source: a ready snapshot source (tests); wins over ``db``.
    """
    owned: Database | None = None
    if source is None:
        if db is None:
            db = owned = open_database(settings, purpose="monitor")
        source = SnapshotSource.for_database(db, settings)
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector(source, settings)
    registry.register(collector)
    server = _wsgi_server(
        host,
        port,
        make_app(registry, collector),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    return ExporterServer(server, registry, source=source, db=owned)


def serve_exporter(settings: Settings, *, host: str = "127.0.0.1", port: int = 9187) -> None:
    """Serve ``/metrics`` and ``/healthz`` until interrupted (blocking; ``dbops exporter``)."""
    with (
        make_server(settings, host=host, port=port) as server,
        contextlib.suppress(KeyboardInterrupt),
    ):
        server.serve_forever()
