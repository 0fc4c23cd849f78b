"""The store on a real PostgreSQL server: a run reads back exactly as on SQLite, the CLI and the app
work on a `postgresql+psycopg://` URL, timestamps stay UTC whatever the server's zone, and two writer
processes sharing one database (schema created at the same moment, the same problems, read-then-write
transactions) lose nothing.

The session fixture starts its own server (initdb + pg_ctl from the Debian `postgresql` package, as
the `postgres` user when we are root) in a temp folder on 127.0.0.1 and a free port, and stops it at
the end. The server runs in Asia/Tokyo on purpose: a UTC-only test would hide time-zone bugs.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinktrace import runner  # noqa: E402
from reasoning.backends.scripted import ScriptedLM  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from reasoning.types import Problem  # noqa: E402
from reasoning.verifiers import load_verifier  # noqa: E402
from store import Store  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROBLEMS = [Problem(key=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), dataset="unit")
            for i in range(12)]


def script(prompt: str, sample: int, call: int) -> str:
    """Right on even samples, off by one on odd ones, so votes and grades vary."""
    i = int(prompt.split("What is ")[-1].split(" ")[0])
    return f"Add {i} and {i}: {i} + {i} = {2 * i}.\n\nCheck it.\n\nThe answer is {2 * i + sample % 2}."


def judge(prompt: str) -> float:
    return 0.7 if prompt.rstrip().rstrip(".").endswith(("0", "2", "4", "6", "8")) else 0.4


# ---------------------------------------------------------------- the server
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, port: int):
        self.port = port
        self.count = 0

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://thinktrace@127.0.0.1:{self.port}/{dbname}"

    def new_db(self) -> str:
        """A fresh, empty database on the server (schema not created: ThinkTrace does that)."""
        import psycopg

        self.count += 1
        name = f"t{self.count}_{os.getpid()}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="thinktrace", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not found: apt-get install -y postgresql")
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -r requirements.txt")
    # initdb refuses to run as root: run the server as the `postgres` user the Debian package creates.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="thinktrace-pg-"))
    if os.geteuid() == 0:
        try:
            shutil.chown(folder, "postgres", "postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root without a `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "thinktrace", "--auth=trust", "-E", "UTF8",
                    "--no-locale", "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c timezone=Asia/Tokyo"
    started = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w",
                              "-t", "60", "-o", options, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
    try:
        yield PgServer(port)
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def pg_url(pg_server, monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return pg_server.new_db()


def cli(*args, timeout=120):
    env = {**os.environ, "THINKTRACE_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def scripted_run(url: str, strategy: str, verifier: str | None = None, seed: int = 3) -> str:
    """A scripted run, stored at `url`."""
    lm = ScriptedLM(script, judge=judge)
    cfg = SearchConfig(n=4, beam_width=2, max_steps=3, temperature=0.8)
    request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted", verifier=verifier,
                                seed=seed, config=cfg).validate()
    ver = load_verifier(verifier, lm)
    store = Store(url)
    run_id = runner.create_run(store, request, PROBLEMS[:3], lm, ver)
    runner.execute(store, run_id, lm, ver)
    return run_id


# ---------------------------------------------------------------- one process
VOLATILE = {"id", "created_at", "finished_at", "wall_seconds"}


@pytest.mark.parametrize("strategy,verifier", [("self_consistency", None), ("beam_search", "self_eval")])
def test_a_run_reads_back_from_postgres_exactly_as_from_sqlite(pg_url, tmp_path, strategy, verifier):
    from store.runs import run_results, tree_nodes

    sqlite_url = f"sqlite:///{tmp_path / 'same.db'}"
    shown = {}
    for url in (pg_url, sqlite_url):
        run_id = scripted_run(url, strategy, verifier)
        proc = cli("show", run_id, "--json", "--db", url)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        trees = [[{k: v for k, v in node.model_dump().items() if k not in ("id", "run_id", "problem_id")}
                  for node in tree_nodes(Store(url), run_id, r.problem_id)] for r in run_results(Store(url), run_id)]
        shown[url] = ({k: v for k, v in doc.items() if k not in VOLATILE}, trees)
    assert shown[pg_url] == shown[sqlite_url]
    assert shown[pg_url][0]["status"] == "done" and len(shown[pg_url][0]["results"]) == 3
    assert sum(len(tree) for tree in shown[pg_url][1]) > 3 * 4  # the whole trees, pruned nodes too


def test_timestamps_are_utc_whatever_the_server_time_zone(pg_url):
    from store.library import LibraryFilter, library_runs
    from store.runs import run_summary

    before = datetime.now(timezone.utc)
    run_id = scripted_run(pg_url, "cot")
    created = run_summary(Store(pg_url), run_id).created_at
    created = created if created.tzinfo else created.replace(tzinfo=timezone.utc)  # naive means UTC
    assert abs(created - before) < timedelta(minutes=1)  # the server runs at UTC+9
    today = LibraryFilter(created_from=before - timedelta(minutes=1), created_to=before + timedelta(minutes=1))
    assert [r.id for r in library_runs(Store(pg_url), today)[0]] == [run_id]


def test_a_run_on_another_machine_reads_running_while_its_heartbeat_is_fresh(pg_url):
    """Two machines, one database: the run's pid is never checked off its host (here it is our own,
    alive, pid); the heartbeat decides, and resume refuses with the worker's host in the message."""
    from sqlalchemy import update

    from store import models as m

    run_id = scripted_run(pg_url, "cot")

    def set_worker(beat):
        with Store(pg_url).session() as session:
            session.execute(update(m.Run).where(m.Run.id == run_id).values(
                status="running", worker_pid=os.getpid(), worker_host="gpu-box-7", heartbeat_at=beat))

    set_worker(datetime.now(timezone.utc))
    listed = cli("runs", "--json", "--db", pg_url)
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout) if r["id"] == run_id] == ["running"]
    refused = cli("resume", run_id, "--db", pg_url)
    assert refused.returncode == 2 and f"process {os.getpid()} on gpu-box-7" in refused.stderr
    set_worker(datetime.now(timezone.utc) - timedelta(seconds=m.STALE_AFTER_S + 5))
    listed = cli("runs", "--json", "--db", pg_url)
    assert [r["status"] for r in json.loads(listed.stdout) if r["id"] == run_id] == ["interrupted"]


def test_a_postgres_database_from_before_the_heartbeat_gains_its_columns(pg_url):
    from sqlalchemy import create_engine, text

    run_id = scripted_run(pg_url, "cot")
    raw = create_engine(pg_url)
    with raw.begin() as conn:
        conn.execute(text("ALTER TABLE run DROP COLUMN worker_host, DROP COLUMN heartbeat_at"))
    shown = cli("show", run_id, "--json", "--db", pg_url)  # a fresh process opens the old schema
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "done"
    with raw.connect() as conn:
        columns = {r[0] for r in conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'run'"))}
    raw.dispose()
    assert {"worker_host", "heartbeat_at"} <= columns


def test_cli_lists_and_shows_runs_on_a_postgres_url(pg_url):
    run_id = scripted_run(pg_url, "self_consistency")
    listed = cli("runs", "--json", "--db", pg_url)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = cli("show", run_id[:8], "--db", pg_url)
    assert shown.returncode == 0 and f"run {run_id} done: 3/3 problems" in shown.stdout


def test_an_unreachable_server_stops_the_cli_before_the_model_loads(pg_server):
    dead = f"postgresql+psycopg://thinktrace@127.0.0.1:{_free_port()}/nothing"
    # The model could not load either: the database error coming first shows the order of checks.
    proc = cli("run", "--strategy", "cot", "--limit", "1", "--model", "./no-such-model", "--db", dead)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot open database postgresql+psycopg://thinktrace@127.0.0.1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no-such-model" not in proc.stderr


def test_library_queries_filter_and_sort_in_sql_on_postgres(pg_url):
    from store.library import LibraryFilter, library_facets, library_runs, update_run_info

    store = Store(pg_url)
    a = scripted_run(pg_url, "self_consistency", seed=1)
    b = scripted_run(pg_url, "cot", seed=2)
    update_run_info(store, a, name="Alpha sweep", tags=["keep", "gsm"])
    rows, total = library_runs(store, LibraryFilter(text="alpha"))
    assert total == 1 and rows[0].id == a
    assert [r.id for r in library_runs(store, LibraryFilter(tag="keep"))[0]] == [a]
    assert library_runs(store, LibraryFilter(tag="kee"))[1] == 0  # whole tags only
    by_accuracy = [r.id for r in library_runs(store, sort="accuracy", descending=True)[0]]
    assert set(by_accuracy) == {a, b}
    assert set(library_facets(store)["strategies"]) == {"self_consistency", "cot"}


def test_the_app_pages_render_runs_stored_on_postgres(pg_url, monkeypatch):
    from tests.test_app import chart_points, make_runs, open_page
    from store.runs import run_problems, tree_nodes

    store = Store(pg_url)
    ids = make_runs(store)
    monkeypatch.setenv("THINKTRACE_DB", pg_url)
    home = open_page()
    assert set(home.dataframe[0].value["strategy"]) == set(ids)
    for strategy in ("beam_search", "best_of_n"):
        at = open_page("pages/tree.py", run=ids[strategy], problem=2)
        problem = run_problems(store, ids[strategy])[1]
        assert chart_points(at) == [n.seq for n in tree_nodes(store, ids[strategy], problem.problem_id)]
        assert not at.error


# ---------------------------------------------------------------- two writer processes
COUNTER = "writer_test_counter"


def _writer(url: str, go: str, increments: int) -> None:
    """One writer process: waits for `go`, then creates and executes a run on the shared problems
    (the schema and the problem rows may be created by either process), then does `increments`
    read-then-write transactions on one shared counter."""
    from sqlmodel import select

    from store import models as m

    while not os.path.exists(go):
        time.sleep(0.01)
    store = Store(url)
    lm = ScriptedLM(script)
    request = runner.RunRequest(strategy="self_consistency", dataset="unit", model="scripted",
                                config=SearchConfig(n=4, temperature=0.8)).validate()
    run_id = runner.create_run(store, request, PROBLEMS, lm, None)
    runner.execute(store, run_id, lm, None)
    for _ in range(increments):
        with store.session() as session:
            row = session.exec(select(m.Meta).where(m.Meta.key == COUNTER)).first()
            if row is None:
                session.add(m.Meta(key=COUNTER, value="1"))
            else:
                row.value = str(int(row.value) + 1)
                session.add(row)
    print(run_id)


def test_two_writer_processes_share_one_database_without_lost_updates(pg_url, tmp_path):
    from sqlalchemy import func
    from sqlmodel import select

    from store import models as m

    go, increments = tmp_path / "go", 150
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, __file__, pg_url, str(go), str(increments)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3)  # both processes imported everything and are polling for `go`
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    run_ids = [out.strip().splitlines()[-1] for out, _ in outs]

    with Store(pg_url).session() as session:
        assert session.get(m.Meta, COUNTER).value == str(2 * increments)  # no read-then-write lost
        assert session.exec(select(func.count()).select_from(m.Problem)).one() == len(PROBLEMS)  # not duplicated
        assert session.get(m.Meta, "schema_version") is not None
        for run_id in run_ids:
            run = session.get(m.Run, run_id)
            results = session.exec(select(m.Result).where(m.Result.run_id == run_id)).all()
            nodes = session.exec(select(func.count()).select_from(m.Node).where(m.Node.run_id == run_id)).one()
            assert run.status == "done" and len(results) == len(PROBLEMS)
            assert run.tokens == sum(r.tokens for r in results) > 0
            assert nodes == len(PROBLEMS) * (1 + 4 * 3)  # root + 4 chains of 3 steps per problem


if __name__ == "__main__":
    _writer(sys.argv[1], sys.argv[2], int(sys.argv[3]))
