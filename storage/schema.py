"""Every table module, imported so SQLModel.metadata is whole (Alembic and tests read it here)."""

from sqlmodel import SQLModel

import storage.incident_loop
import storage.models  # noqa: F401

metadata = SQLModel.metadata
