from sqlalchemy import text

from dbops.db import Database


def test_session_settings_applied(db: Database) -> None:
    with db.session() as session:
        row = session.execute(
            text(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout'), "
                "current_setting('application_name')"
            )
        ).one()
    assert tuple(row) == ("30s", "5s", "1min", "dbops")


def test_prepared_statements_survive_repeated_reads(db: Database) -> None:
    """SQLAlchemy reads must not end in ROLLBACK (psycopg deallocates on rollback)."""
    query = text("SELECT count(*) FROM users WHERE email = :email")
    for _ in range(6):
        with db.session() as session:
            session.execute(query, {"email": "nobody@example.com"}).scalar_one()
    # Every pooled connection that ran the query >= prepare_threshold times must hold it.
    seen = 0
    for _ in range(db.pool.get_stats().get("pool_size", 1)):
        with db.session() as session:
            statements = session.execute(
                text("SELECT statement FROM pg_prepared_statements")
            ).scalars().all()
            seen += sum("FROM users WHERE email" in s for s in statements)
    assert seen >= 1
