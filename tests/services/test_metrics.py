"""Statement metrics of the services: histograms, errors by SQLSTATE class, bounded names."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from dbops.db import Database
from dbops.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    OperationTimeout,
    RetryableConflict,
    translate_db_errors,
)
from dbops.services.invitations import InvitationService
from dbops.services.memberships import MembershipService
from dbops.services.teams import TeamService
from dbops.services.users import UserService
from dbops.telemetry.metrics import (
    BUCKETS_S,
    OTHER,
    OVERFLOW_NAME,
    STATEMENTS,
    StatementMetrics,
    StatementSnapshot,
    error_class,
    timed,
)
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM, unique


def _stat(name: str) -> StatementSnapshot:
    for stat in STATEMENTS.snapshot():
        if stat.name == name:
            return stat
    return StatementSnapshot(name, 0, 0.0, (0,) * len(BUCKETS_S), ())


def _errors(stat: StatementSnapshot) -> dict[str, int]:
    return dict(stat.errors)


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` as it arrives in an ``except`` clause after ``raise exc from cause``."""
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


@pytest.fixture
def users(clean_db: Database) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER)


# -- through the services, on the real database ----------------------------------------------


def test_service_calls_move_count_sum_and_buckets(users: UserService) -> None:
    email = f"{unique('m')}@example.com"
    create_before, get_before = _stat("users.create"), _stat("users.get_by_email")

    users.create(SYSTEM, email=email, password=PASSWORD, display_name="Metrics")
    for _ in range(3):
        assert users.get_by_email(SYSTEM, email.upper()).email == email

    create, get = _stat("users.create"), _stat("users.get_by_email")
    assert create.count == create_before.count + 1
    assert get.count == get_before.count + 3
    assert get.sum_s > get_before.sum_s
    # Cumulative buckets never decrease and end at most at the count (+Inf).
    assert list(get.bucket_counts) == sorted(get.bucket_counts)
    assert get.bucket_counts[-1] <= get.count
    # Three round trips on a local server finish within 5 s: all in the last finite bucket.
    assert get.bucket_counts[-1] - get_before.bucket_counts[-1] == 3
    assert _errors(get) == _errors(get_before)
    assert _errors(create) == _errors(create_before)


def test_duplicate_email_counts_a_class_23_error_and_still_raises(users: UserService) -> None:
    email = f"{unique('dup')}@example.com"
    users.create(SYSTEM, email=email, password=PASSWORD, display_name="First")
    before = _stat("users.create")

    with pytest.raises(Conflict) as caught:
        users.create(SYSTEM, email=email.upper(), password=PASSWORD, display_name="Second")

    assert caught.value.field == "email"
    after = _stat("users.create")
    assert after.count == before.count + 1  # failed calls are timed too
    assert _errors(after).get("23", 0) == _errors(before).get("23", 0) + 1
    assert sum(_errors(after).values()) == sum(_errors(before).values()) + 1


def test_not_found_is_an_answer_not_an_error(users: UserService) -> None:
    before = _stat("users.get_by_email")
    with pytest.raises(NotFound):
        users.get_by_email(SYSTEM, f"{unique('nobody')}@example.com")
    after = _stat("users.get_by_email")
    assert after.count == before.count + 1
    assert after.errors == before.errors


def test_many_distinct_emails_add_no_label_values(users: UserService) -> None:
    with pytest.raises(NotFound):
        users.get_by_email(SYSTEM, "warm@example.com")
    names_before = {s.name for s in STATEMENTS.snapshot()}
    for i in range(50):
        email = f"card{i}-{unique('x')}@example.com"
        with pytest.raises(NotFound):
            users.get_by_email(SYSTEM, email)
    names_after = {s.name for s in STATEMENTS.snapshot()}
    assert names_after == names_before
    assert all("@" not in name and " " not in name for name in names_after)


def test_every_public_service_method_has_a_stable_name() -> None:
    for cls, prefix in (
        (UserService, "users"),
        (TeamService, "teams"),
        (MembershipService, "memberships"),
        (InvitationService, "invitations"),
    ):
        public = [n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")]
        assert public, cls
        for name in public:
            assert getattr(vars(cls)[name], "__dbops_statement__", None) == f"{prefix}.{name}"
    # Private helpers stay unwrapped (they are part of a named call already).
    assert not hasattr(vars(UserService)["_write"], "__dbops_statement__")
    names = {s.name for s in STATEMENTS.snapshot()}
    assert {"users.get_by_email", "memberships.role_of", "teams.teams_of_user"} <= names


# -- error classes (no database) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_raised(Conflict("email is already taken"), pg_errors.UniqueViolation()), "23"),
        (_raised(NotFound("a referenced row"), pg_errors.ForeignKeyViolation()), "23"),
        (_raised(RetryableConflict("retry"), pg_errors.SerializationFailure()), "40"),
        (_raised(RetryableConflict("retry"), pg_errors.DeadlockDetected()), "40"),
        (_raised(OperationTimeout("slow"), pg_errors.QueryCanceled()), "57"),
        (_raised(DatabaseUnavailable("down"), pg_errors.AdminShutdown()), "57"),
        (pg_errors.UndefinedTable(), "42"),
        (_raised(OperationTimeout("pool"), PoolTimeout("no connection")), OTHER),
        (_raised(DatabaseUnavailable("down"), psycopg.OperationalError("refused")), OTHER),
        (RuntimeError("a bug"), OTHER),
        (NotFound("user not found"), None),
        (Conflict("slug taken"), None),
        (InvalidInput("bad", "email"), None),
        (KeyboardInterrupt(), None),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_error_class(exc: BaseException, expected: str | None) -> None:
    assert error_class(exc) == expected


def test_error_class_of_a_translated_driver_error() -> None:
    with pytest.raises(Conflict) as caught, translate_db_errors():
        raise pg_errors.UniqueViolation("duplicate key value")
    assert error_class(caught.value) == "23"


def test_error_class_through_sqlalchemy_orig() -> None:
    from sqlalchemy.exc import IntegrityError

    wrapped = IntegrityError("INSERT ...", {}, pg_errors.CheckViolation())
    assert error_class(wrapped) == "23"


# -- the recorder (no database) ---------------------------------------------------------------


def test_bucket_bounds_are_inclusive() -> None:
    m = StatementMetrics((0.001, 0.01))
    m.record("s", 0.001)  # exactly on the bound: le="0.001"
    m.record("s", 0.0010001)  # just past it
    m.record("s", 0.5)  # past the last bound: +Inf only
    (stat,) = m.snapshot()
    assert stat.bucket_counts == (1, 2)
    assert stat.count == 3
    assert stat.sum_s == pytest.approx(0.5020001)


def test_timed_records_errors_and_reraises_the_same_exception() -> None:
    m = StatementMetrics()
    boom = _raised(Conflict("taken"), pg_errors.UniqueViolation())

    @timed("t.fails", metrics=m)
    def fails() -> None:
        raise boom

    @timed("t.ok", metrics=m)
    def ok(x: int, *, y: int) -> int:
        return x + y

    assert ok(1, y=2) == 3
    with pytest.raises(Conflict) as caught:
        fails()
    assert caught.value is boom
    stats = {s.name: s for s in m.snapshot()}
    assert stats["t.ok"].count == 1
    assert stats["t.ok"].errors == ()
    assert stats["t.fails"].count == 1
    assert stats["t.fails"].errors == (("23", 1),)
    assert ok.__name__ == "ok"


def test_names_past_the_cap_share_one_overflow_series() -> None:
    m = StatementMetrics(max_statements=3)
    for i in range(20):
        m.record(f"name{i}", 0.001)
    stats = {s.name: s.count for s in m.snapshot()}
    assert stats == {"name0": 1, "name1": 1, "name2": 1, OVERFLOW_NAME: 17}


def test_concurrent_records_lose_no_count() -> None:
    m = StatementMetrics()
    series = m.series("hot")
    threads_n, calls = 8, 5000

    def work() -> None:
        for i in range(calls):
            series.observe(1000 + i, "40" if i % 10 == 0 else None)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (stat,) = m.snapshot()
    assert stat.count == threads_n * calls
    assert stat.errors == (("40", threads_n * calls // 10),)
    assert stat.sum_s == pytest.approx(threads_n * sum(1000 + i for i in range(calls)) / 1e9)


def test_buckets_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        StatementMetrics((0.1, 0.01))
