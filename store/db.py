"""Engine and sessions. SQLite by default (WAL, busy timeout, BEGIN IMMEDIATE), any SQLAlchemy URL.

Why the SQLite settings: a run writes from one process while the app reads from another. WAL lets
readers proceed during writes; busy_timeout turns lock contention into waiting instead of errors;
BEGIN IMMEDIATE takes the write lock up front, so a read-then-write transaction cannot lose an
update to another writer (measured in RECIPES.md: 48 of 1000 updates lost without it, 0 with it).

PostgreSQL (a store shared by a team, `postgresql+psycopg://user:pw@host/db`) gets the same
guarantees another way: every transaction first takes one transaction-scoped advisory lock, so
read-then-write code (a problem looked up then inserted, a run's tags read then written, the schema
checked then created) stays correct with many writer processes on many hosts, exactly as under
SQLite's single writer. Timestamps need nothing: SQLModel stores them as TIMESTAMP WITH TIME ZONE and
reads them back in UTC. A run's `worker_pid` is only meaningful on its `worker_host`; other machines
judge a running run by its `heartbeat_at` (see docs/scale.md).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import event, insert
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError
from sqlmodel import Session, SQLModel, create_engine, select

from reasoning.errors import UserError
from store.models import SCHEMA_VERSION, Meta

DEFAULT_DB = "thinktrace.db"
_engines: dict[str, Engine] = {}  # one engine (and connection pool) per URL per process


def resolve_url(db: str | None = None) -> str:
    """`--db` beats `THINKTRACE_DB` beats ./thinktrace.db. A value with '://' is a URL, else a path."""
    value = db or os.environ.get("THINKTRACE_DB") or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


class Store:
    """One database: the only way in. It owns the engine (created, schema checked, on first use and
    shared by every Store of the same URL in this process), the pre-check and the transactions; the
    queries and writes are functions of the store/ modules that take a Store first (store.runs,
    store.liveness, store.library, store.sweeps, store.curves, store.analysis, store.bundle)."""

    def __init__(self, url: str):
        self.url = url
        self._parsed = _parse(url)  # the one place a URL is taken apart
        self._checked = False

    @classmethod
    def open(cls, db: str | None = None) -> "Store":
        """The database `--db` / $THINKTRACE_DB / ./thinktrace.db names, pre-checked (once) so that a
        database that could not be used stops a command before a slow model load."""
        store = cls(resolve_url(db))
        store.precheck()
        return store

    def __repr__(self) -> str:
        return f"Store({self.describe()!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Store) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self._parsed.get_backend_name() == "sqlite"

    @property
    def sqlite_file(self) -> str | None:
        """The file of a SQLite database (None for an in-memory one or a server)."""
        path = self._parsed.database if self.is_sqlite else None
        return path if path and path != ":memory:" else None

    def describe(self) -> str:
        """A human label: the file path for SQLite, the URL without password otherwise."""
        if self.is_sqlite:
            return self._parsed.database or ":memory:"
        return self._parsed.render_as_string(hide_password=True)

    def precheck(self) -> None:
        """Fail fast on a database that could not be used; creates nothing, runs once per Store."""
        if not self._checked:
            _precheck(self)
            self._checked = True

    @property
    def engine(self) -> Engine:
        """The process's engine for this URL, schema created or checked on first use."""
        engine = _engines.get(self.url)
        if engine is None:
            engine = _engines[self.url] = _open_engine(self)
        return engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        session = Session(self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def schema_version(self) -> int:
        with self.session() as session:
            row = session.exec(select(Meta).where(Meta.key == "schema_version")).first()
            return int(row.value) if row else 0

    def add(self, *rows):
        """Insert table rows (model objects) in one transaction and return them with their ids: for
        benches and tests that build data by hand; the application writes through store/ modules.
        Rows of different tables may be inserted in any order: add a row others refer to first."""
        with self.session() as session:
            session.add_all(rows)
        return rows

    def insert(self, table, rows: list[dict]) -> None:
        """Bulk-insert plain rows (dicts with the same keys) into a table, in one transaction."""
        if rows:
            with self.session() as session:
                session.execute(insert(table), rows)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number ("h:1,h2:2")
        raise UserError(f"not a database path or URL: {url}") from None


def _cannot_open(store: "Store", exc: BaseException) -> UserError:
    """The one message for a database that cannot be opened: its label and the first line of the
    driver's reason (libpq adds "\n\tIs the server running ...?" and psycopg lists every attempt on
    further lines), so every user error stays one line whichever path opened the database."""
    reason = str(getattr(exc, "orig", None) or exc).strip()
    return UserError(f"cannot open database {store.describe()}: {reason.splitlines()[0] if reason else type(exc).__name__}")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event issue the BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# Key of the advisory lock that serialises ThinkTrace's write transactions on a server database.
PG_LOCK_KEY = 0x7468696E6B  # "think"
LOCK_TIMEOUT_S = 30  # like SQLite's busy_timeout: wait this long for another writer, then fail


def _postgres_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        cur.close()
        dbapi_conn.commit()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")


def _check_sqlite_path(path: str) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        raise UserError(f"cannot create database {path}: folder {folder} does not exist")
    target = Path(path) if Path(path).exists() else folder
    if not os.access(target, os.W_OK):
        raise UserError(f"cannot write database {path}: permission denied")


def _open_engine(store: Store) -> Engine:
    if store.is_sqlite:
        store.precheck()  # read-only: a refused file stays byte-identical
        engine = create_engine(store.url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_pragmas(engine)
    else:
        engine = _server_engine(store)
    try:
        _ensure_schema(engine, store.describe())
    except DatabaseError as exc:
        engine.dispose()
        raise _cannot_open(store, exc) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _server_engine(store: Store) -> Engine:
    """An engine for a database server (PostgreSQL tested; other SQLAlchemy URLs may work)."""
    try:
        engine = create_engine(store.url, pool_pre_ping=True)
    except Exception as exc:  # missing driver, bad URL
        hint = " (install the driver: pip install 'psycopg[binary]')" if "postgres" in store._parsed.drivername else ""
        raise UserError(f"{_cannot_open(store, exc)}{hint}") from None
    if engine.dialect.name == "postgresql":
        _postgres_settings(engine)
    return engine


def _ensure_schema(engine: Engine, label: str) -> None:
    """Check the recorded version before touching anything, so a newer database stays unchanged.
    One transaction: processes opening a new database at once create it once (under SQLite's write
    lock or the PostgreSQL advisory lock)."""
    with engine.begin() as conn:
        row = _read_version(engine, conn)
        _refuse_newer(row, label)
        SQLModel.metadata.create_all(conn)
        _add_missing_columns(conn)
        if row is None:
            conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def _add_missing_columns(conn) -> None:
    """Nullable columns added to a table since a database was created (worker_host, heartbeat_at)
    are added in place. The schema version stays: an older ThinkTrace reads and writes such a
    database as before, since it never names the new columns."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in SQLModel.metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable and not column.primary_key:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}")


def _refuse_newer(row, label: str) -> None:
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise UserError(
            f"database {label} has schema version {row[0]}, newer than this ThinkTrace "
            f"understands ({SCHEMA_VERSION}): upgrade ThinkTrace to open it"
        )


def _read_version(engine: Engine, conn):
    if not engine.dialect.has_table(conn, "meta"):
        return None
    return conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").first()


def _precheck(store: Store) -> None:
    if not store.is_sqlite:
        _precheck_server(store)
        return
    path = store.sqlite_file
    if path is None:
        return
    _check_sqlite_path(path)
    if not Path(path).exists():
        return
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return  # no meta table yet: a new or foreign database, the engine's schema check decides
    except sqlite3.DatabaseError:
        raise UserError(f"{path} is not a ThinkTrace database (not SQLite, or corrupt)") from None
    _refuse_newer(row, path)


def _precheck_server(store: Store) -> None:
    """Connect once and read the schema version (creating nothing), so an unreachable server, bad
    credentials or a missing driver stop the CLI before it loads a model."""
    if store.url in _engines:
        return
    engine = _server_engine(store)
    try:
        with engine.connect() as conn:
            row = _read_version(engine, conn)
    except DatabaseError as exc:
        raise _cannot_open(store, exc) from None
    finally:
        engine.dispose()
    _refuse_newer(row, store.describe())
