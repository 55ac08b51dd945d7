"""Alembic environment: migrates the engine handed over by storage.db (or DATABASE_URL)."""

import os

from alembic import context

from storage.db import make_engine
from storage.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    engine = make_engine(os.environ.get("DATABASE_URL", "sqlite:///wavegate.db"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
