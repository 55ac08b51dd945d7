"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from storage.db import current_revision, head_revision, make_engine, schema_is_current, upgrade
from storage.schema import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine: Engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            drift = compare_metadata(context, metadata)
        assert drift == []
        assert schema_is_current(engine)
    finally:
        engine.dispose()


def test_a_fresh_database_is_not_current_until_upgraded(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    assert current_revision(engine) is None
    assert not schema_is_current(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    upgrade(engine)  # idempotent
    assert schema_is_current(engine)
