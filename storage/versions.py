"""Table versions: counters that change whenever this process writes to a table, so a cache of
what was read (bot/slack/ack_cache.py) knows when it is stale, and which tables a piece of work
read, so it is invalidated only by the writes that matter to it (a poll's measurements do not
invalidate the overview of 200 rollouts, which reads none).

Every write statement, ORM or Core, on any session or connection of the engine, marks its
connection with the tables it wrote (a statement whose table is not known, such as raw SQL,
marks every table); the commit of a marked connection bumps their counters, once as it begins
and once when the connection is handed back to the pool, after the commit. Writes by another
process are not seen here: a cache bounds them by age.

`make_engine` sets this up for every engine (`track_writes`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.visitors import iterate

EVERY = "*"  # a write (or read) of tables not known
_WROTE = "wavegate_wrote"
# Statements that read (or only steer a transaction); anything else is taken as a write.
_READS = ("SELECT", "PRAGMA", "SHOW", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "SET", "EXPLAIN")


@dataclass
class Reads:
    """What one piece of work touched: the tables it read, and whether it wrote."""

    tables: set[str] = field(default_factory=set)
    wrote: bool = False


_recording: ContextVar[Reads | None] = ContextVar("wavegate_reads", default=None)


def _tables_in(statement: Any) -> frozenset[str]:
    return frozenset(e.name for e in iterate(statement) if isinstance(e, sa.Table))


class TableVersions:
    """This process's write counters of the engine's tables."""

    def __init__(self, engine: Engine) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._read_tables: WeakKeyDictionary[Any, frozenset[str]] = WeakKeyDictionary()
        sa.event.listen(engine, "after_cursor_execute", self._executed)
        sa.event.listen(engine, "commit", self._committing)
        sa.event.listen(engine, "checkin", self._checked_in)

    # ---------------------------------------------------------------- the events

    def _executed(
        self,
        conn: sa.Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _many: bool,
    ) -> None:
        compiled = getattr(context, "compiled", None)
        element = getattr(compiled, "statement", None)
        reads = _recording.get()
        if isinstance(element, UpdateBase):
            table = getattr(element, "table", None)
            self._wrote(conn, getattr(table, "name", EVERY), reads)
        elif statement.lstrip()[:9].upper().startswith(_READS):
            if reads is not None:
                reads.tables |= self._tables_read(compiled, element)
        else:
            self._wrote(conn, EVERY, reads)

    def _tables_read(self, compiled: Any, element: Any) -> frozenset[str]:
        if element is None:
            return frozenset({EVERY})
        tables = self._read_tables.get(compiled)
        if tables is None:
            tables = _tables_in(element) or frozenset({EVERY})
            self._read_tables[compiled] = tables
        return tables

    @staticmethod
    def _wrote(conn: sa.Connection, table: str, reads: Reads | None) -> None:
        conn.info.setdefault(_WROTE, set()).add(table)
        if reads is not None:
            reads.wrote = True

    def _committing(self, conn: sa.Connection) -> None:
        self._bump(conn.info.get(_WROTE, ()))

    def _checked_in(self, _dbapi_connection: Any, record: Any) -> None:
        self._bump(record.info.pop(_WROTE, ()))

    def _bump(self, tables: set[str] | tuple[()]) -> None:
        if not tables:
            return
        with self._lock:
            for table in tables:
                self._counts[table] = self._counts.get(table, 0) + 1

    # ---------------------------------------------------------------- reading them

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def unchanged(self, seen: Mapping[str, int]) -> bool:
        """Whether no table in `seen` (and nothing unknown) was written since it was taken."""
        counts = self._counts
        return all(counts.get(table, 0) == count for table, count in seen.items())

    @staticmethod
    def of(snapshot: Mapping[str, int], reads: Reads) -> dict[str, int]:
        """The counters of the tables `reads` read (and of unknown writes), from `snapshot`."""
        return {table: snapshot.get(table, 0) for table in reads.tables | {EVERY}}


@contextmanager
def recording() -> Iterator[Reads]:
    """Note the tables read, and any write, by the statements run inside the block (in this
    task or thread only)."""
    reads = Reads()
    token = _recording.set(reads)
    try:
        yield reads
    finally:
        _recording.reset(token)


_VERSIONS: WeakKeyDictionary[Engine, TableVersions] = WeakKeyDictionary()
_SETUP = threading.Lock()


def track_writes(engine: Engine) -> TableVersions:
    """The engine's table versions, set up on first use."""
    with _SETUP:
        versions = _VERSIONS.get(engine)
        if versions is None:
            versions = _VERSIONS[engine] = TableVersions(engine)
        return versions
