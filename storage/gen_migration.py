"""Regenerate the schema migration from the models: `python -m storage.gen_migration REV MESSAGE`.

Developer tool; autogenerates against an empty SQLite database migrated to the previous head.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command

from storage.db import alembic_config, make_engine, upgrade

if __name__ == "__main__":
    rev, message = sys.argv[1], " ".join(sys.argv[2:]) or "schema"
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'gen.db'}")
        upgrade(engine)
        command.revision(alembic_config(engine), message=message, autogenerate=True, rev_id=rev)
