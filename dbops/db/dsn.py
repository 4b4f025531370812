"""One database URL, validated once and held in the three forms dbops needs (:class:`Dsn`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbops.config import Settings, redact_dsn, to_libpq_url, to_sqlalchemy_url
from dbops.errors import ConfigError

__all__ = ["Dsn", "configured_dsn"]

_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg://")

#: Connection options whose value libpq checks only when connecting (too late: a bad value then
#: reads like an unreachable server). Lowercase, as libpq compares them.
_CHOICES: dict[str, frozenset[str]] = {
    "sslmode": frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
    "gssencmode": frozenset({"disable", "prefer", "require"}),
    "channel_binding": frozenset({"disable", "prefer", "require"}),
    "sslnegotiation": frozenset({"postgres", "direct"}),
    "target_session_attrs": frozenset(
        {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
    ),
    "load_balance_hosts": frozenset({"disable", "random"}),
}
#: Options that must be whole numbers, with their smallest and largest value.
_INTEGERS: dict[str, tuple[int, int]] = {
    "port": (1, 65535),
    "connect_timeout": (0, 2**31 - 1),
    "keepalives": (0, 1),
    "keepalives_idle": (0, 2**31 - 1),
    "keepalives_interval": (0, 2**31 - 1),
    "keepalives_count": (0, 2**31 - 1),
}


@dataclass(frozen=True)
class Dsn:
    """A PostgreSQL URL in its three forms, built once by :meth:`parse`.

    Attributes:
        libpq: ``postgresql://...`` for psycopg, libpq and psql (password included).
        sqlalchemy: ``postgresql+psycopg://...`` for SQLAlchemy and alembic (password included).
        redacted: the libpq form with any password replaced by ``***``: the only form that may
            reach a log line, an error message or a status table.

    ``repr()`` and ``str()`` show the redacted form only.
    """

    libpq: str = field(repr=False)
    sqlalchemy: str = field(repr=False)
    redacted: str

    def __str__(self) -> str:
        return self.redacted

    @classmethod
    def parse(cls, url: str, *, source: str = "DATABASE_URL") -> Dsn:
        """Validate ``url`` the way libpq will read it and build the three forms.

        Args:
            url: a ``postgres://``, ``postgresql://`` or ``postgresql+psycopg://`` URL.
            source: what to call the URL in an error message (the setting it came from).

        Raises:
            ConfigError: not a PostgreSQL URL, a URL libpq cannot parse, an unknown option, or an
                option value libpq would reject when connecting (``sslmode=bogus``, port
                99999). The message names the problem and never quotes the URL (its user-info
                may hold a password).
        """
        url = url.strip()
        if not url.lower().startswith(_SCHEMES):
            scheme, sep, _ = url.partition("://")
            got = f"a {scheme}:// URL" if sep and scheme.isascii() and scheme.isalnum() else "not"
            raise ConfigError(f"{source} must be a postgresql:// URL ({got})")
        _check_user_info(url, source)
        libpq = to_libpq_url(url)
        options = _libpq_options(libpq, source)
        _check_values(options, source)
        return cls(libpq=libpq, sqlalchemy=to_sqlalchemy_url(url), redacted=redact_dsn(libpq))

    def as_user(self, user: str, password: str | None = None) -> Dsn:
        """The same server and database as another role.

        ``password`` None puts none in the URL (the embedded cluster's socket asks for none).
        """
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.libpq)
        host = parts.netloc.rpartition("@")[2]
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        url = urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
        return Dsn.parse(url, source=f"the URL of role {user}")


def configured_dsn(settings: Settings) -> Dsn | None:
    """The validated ``DATABASE_URL``; ``None`` when unset (the embedded cluster is used).

    Raises:
        ConfigError: the URL is not a PostgreSQL URL libpq accepts (see :meth:`Dsn.parse`).
    """
    if settings.database_url is None:
        return None
    return Dsn.parse(settings.database_url.get_secret_value())


def _check_user_info(url: str, source: str) -> None:
    """Refuse a URL whose user-info holds an unescaped ``@`` or ``/``.

    libpq ends the user-info at the *first* ``@`` before the first ``/``: with a password like
    ``p@ss`` or ``p/ss`` the rest of the password becomes the host, the port or the database
    name, which libpq (and any error about them) then prints. So more than one ``@`` before
    the path, or an ``@`` in the path (before the query), is refused here, without quoting.
    """
    rest = url.split("://", 1)[1].split("?", 1)[0]
    authority, _, path = rest.partition("/")
    if authority.count("@") > 1 or "@" in path:
        raise ConfigError(
            f"{source} is not a valid PostgreSQL URL: an '@' or '/' in the user name or "
            "password must be percent-encoded (@ as %40, / as %2F, : as %3A, % as %25)"
        )


def _libpq_options(libpq: str, source: str) -> dict[str, str]:
    """The options libpq reads from ``libpq``; a parse error becomes a quote-free ConfigError."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(libpq)
    except ProgrammingError as exc:
        reason = _unquoted_reason(str(exc))
        raise ConfigError(f"{source} is not a valid PostgreSQL URL: {reason}") from None
    return {key: str(value) for key, value in options.items() if value is not None}


#: Quoted characters libpq writes into its own messages (``matching "]"``, ``separator "="``).
_LIBPQ_LITERALS = ('"]"', '"="', '"&"')


def _unquoted_reason(message: str) -> str:
    """The parse error of libpq, up to the first quoted piece of the URL.

    libpq quotes what it could not parse: the whole URL, or the password with a bad %-escape
    (``invalid percent-encoded token: "p%zzSECRET"``). Everything from the first quote that is
    not one of libpq's own quoted characters on is dropped, so no part of the URL survives.
    """
    text = " ".join(message.split())
    cut = 0
    while (cut := text.find('"', cut)) != -1:
        literal = next((lit for lit in _LIBPQ_LITERALS if text.startswith(lit, cut)), None)
        if literal is None:
            text = text[:cut]
            break
        cut += len(literal)
    text = text.rstrip(' :"')
    for dangling in (" in URI", " in"):
        text = text.removesuffix(dangling)
    return text or "it cannot be parsed"


def _check_values(options: dict[str, str], source: str) -> None:
    for name, allowed in _CHOICES.items():
        value = options.get(name)
        if value is not None and value.lower() not in allowed:
            choices = ", ".join(sorted(allowed))
            raise ConfigError(f"{source}: invalid {name} (expected one of {choices})")
    for name, (low, high) in _INTEGERS.items():
        value = options.get(name)
        if value is None:
            continue
        # A multi-host URL has one port per host, comma-separated; an empty one is the default.
        for part in value.split(",") if name == "port" else [value]:
            part = part.strip()
            if name == "port" and not part:
                continue
            if not part.isdigit() or not low <= int(part) <= high:
                raise ConfigError(
                    f"{source}: invalid {name} (expected a whole number from {low} to {high})"
                )
