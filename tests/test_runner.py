"""The runner and the store: every node lands, a problem counts only when its result commits,
and an interrupted run resumes to exactly what an uninterrupted one gives."""
from __future__ import annotations

import sqlite3

import pytest
from sqlmodel import select

from thinktrace import runner
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from store import Store
from store import models as m
from store.runs import discard_partial, get_run, list_runs, resolve_run_id, run_results, run_summary, tree_nodes

PROBLEMS = [Problem(key=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), dataset="unit") for i in range(4)]


def doubling_script(prompt: str, sample: int, call: int) -> str:
    """Right on even samples, off by one on odd ones; the question's number comes from the prompt."""
    i = int(prompt.split("What is ")[1].split(" ")[0])
    answer = 2 * i + (sample % 2)
    return f"{i} + {i} = {2 * i}\n\nThe answer is {answer}."


def make_run(store, strategy="self_consistency", n=3, verifier=None, lm=None):
    lm = lm or ScriptedLM(doubling_script)
    request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted", verifier=verifier,
                                config=SearchConfig(n=n)).validate()
    ver = load_verifier(verifier, lm)
    run_id = runner.create_run(store, request, PROBLEMS, lm, ver)
    return run_id, lm, ver


def test_a_run_stores_every_node_and_one_result_per_problem(store):
    run_id, lm, ver = make_run(store, verifier="self_eval")
    run = runner.execute(store, run_id, lm, ver)
    assert run.status == "done" and run.finished_at is not None
    results = run_results(store, run_id)
    assert [r.key for r in results] == ["p0", "p1", "p2", "p3"]
    assert all(r.correct for r in results)  # 2 right votes of 3 beat 1 wrong
    nodes = tree_nodes(store, run_id, results[1].problem_id)
    assert len(nodes) == 1 + 3 * 2  # root + 3 chains of 2 steps
    assert [n.parent_seq for n in nodes] == [None, 0, 1, 0, 3, 0, 5]
    assert {n.status for n in nodes} == {"selected", "kept", "terminal"}
    assert all(n.score is not None for n in nodes if n.parent_seq is not None)
    # budgets add up: tokens per node sum to the problem's tokens, problems' to the run's
    assert sum(n.tokens for n in nodes) == results[1].tokens
    summary = run_summary(store, run_id)
    assert summary.tokens == sum(r.tokens for r in results)
    assert summary.model_calls == 4 and summary.verifier_calls == 4
    assert summary.accuracy == 1.0 and summary.problems_done == 4


def test_run_records_model_settings_and_reproduces_its_request(store):
    run_id, lm, ver = make_run(store, n=5)
    run = get_run(store, run_id)
    request = runner.request_of(run)
    assert request.strategy == "self_consistency" and request.config.n == 5 and request.dataset == "unit"
    assert run.model_name == "scripted" and run.status == "running" and run.n_problems == 4


class Interrupting(ScriptedLM):
    def __init__(self, after_calls):
        super().__init__(doubling_script)
        self.after_calls = after_calls

    def complete(self, *args, **kwargs):
        if len(self.calls) >= self.after_calls:
            raise KeyboardInterrupt
        return super().complete(*args, **kwargs)


def test_an_interrupted_run_keeps_finished_problems_and_resumes_to_the_same_result(store, tmp_path):
    run_id, _, _ = make_run(store, lm=Interrupting(after_calls=2))
    with pytest.raises(KeyboardInterrupt):
        runner.execute(store, run_id, Interrupting(after_calls=2), None)
    assert run_summary(store, run_id).status == "interrupted"
    assert run_summary(store, run_id).problems_done == 2
    runner.execute(store, run_id, ScriptedLM(doubling_script), None)

    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    ref_id, lm, _ = make_run(other)
    runner.execute(other, ref_id, lm, None)
    resumed, reference = run_results(store, run_id), run_results(other, ref_id)
    assert [(r.key, r.answer, r.tokens) for r in resumed] == [(r.key, r.answer, r.tokens) for r in reference]
    assert run_summary(store, run_id).status == "done"
    assert run_summary(store, run_id).tokens == run_summary(other, ref_id).tokens


def test_resume_discards_the_partial_nodes_of_an_unfinished_problem(store, monkeypatch):
    class FailingVerifier:
        name, evaluation_only, n_params = "boom", False, 0

        def score(self, question, paths, gold=None):
            raise RuntimeError("verifier crashed")

    run_id, lm, _ = make_run(store)
    monkeypatch.setattr(runner.NodeWriter, "__init__",
                        lambda self, store_, rid, pid, every_s=0.0: _init_writer(self, store_, rid, pid))
    with pytest.raises(RuntimeError):
        runner.execute(store, run_id, lm, FailingVerifier())
    summary = run_summary(store, run_id)
    assert summary.status == "failed" and "verifier crashed" in summary.error
    with store.session() as session:
        assert len(session.exec(select(m.Node).where(m.Node.run_id == run_id)).all()) > 0  # partial tree
    discard_partial(store, run_id)
    with store.session() as session:
        assert session.exec(select(m.Node).where(m.Node.run_id == run_id)).all() == []
    runner.execute(store, run_id, ScriptedLM(doubling_script), None)
    assert run_summary(store, run_id).problems_done == 4


def _init_writer(self, store, run_id, problem_id):
    self.store, self.run_id, self.problem_id, self.every_s = store, run_id, problem_id, -1.0
    self.pending, self.ids, self.last_flush = {}, {}, 0.0


def test_a_killed_worker_reads_as_interrupted(store):
    run_id, _, _ = make_run(store)
    with store.session() as session:
        session.get(m.Run, run_id).worker_pid = 2**22 + 12345  # no such process
    assert run_summary(store, run_id).status == "interrupted"


def test_a_run_of_another_machine_is_judged_by_its_heartbeat_not_its_pid(store):
    """On a shared database a pid means nothing off its own machine: a run another host works on reads
    running while its heartbeat is fresh, interrupted once it is stale, and our pid check is skipped
    (the pid below is this very process, alive here, and must not count)."""
    import os
    from datetime import timedelta

    from store.liveness import effective_status, runs_here, worker_label

    run_id, _, _ = make_run(store)
    with store.session() as session:
        run = session.get(m.Run, run_id)
        run.worker_pid, run.worker_host, run.heartbeat_at = os.getpid(), "gpu-box-7", m.utcnow()
    with store.session() as session:
        run = session.get(m.Run, run_id)  # read back: SQLite returns naive UTC
        assert not runs_here(run) and worker_label(run) == f"process {os.getpid()} on gpu-box-7"
        now = m.utcnow()
        assert effective_status(run, now) == "running"
        assert effective_status(run, now + timedelta(seconds=m.STALE_AFTER_S + 1)) == "interrupted"
        run.heartbeat_at = None
        assert effective_status(run, now) == "interrupted"
    assert run_summary(store, run_id).status == "interrupted"


def test_a_worker_records_its_machine_and_beats_while_it_works(store, monkeypatch):
    import time

    from store.liveness import HOST

    run_id, _, _ = make_run(store)
    with store.session() as session:
        session.get(m.Run, run_id).heartbeat_at = None
    monkeypatch.setattr(m, "HEARTBEAT_S", 0.05)
    seen = []

    def slow(result, row):  # long enough per problem for a few beats
        time.sleep(0.2)
        with store.session() as session:
            run = session.get(m.Run, run_id)
            seen.append((run.worker_host, run.worker_pid, run.heartbeat_at))

    runner.execute(store, run_id, ScriptedLM(doubling_script), None, on_problem=slow)
    import os

    assert all(host == HOST and pid == os.getpid() for host, pid, _ in seen)
    beats = [b for _, _, b in seen]
    assert all(b is not None for b in beats) and beats == sorted(beats) and beats[-1] > beats[0]
    assert run_summary(store, run_id).status == "done"


def test_a_database_from_before_the_heartbeat_gains_its_columns_and_keeps_its_runs(tmp_path):
    """An existing database without worker_host / heartbeat_at opens, gets them added in place, and
    its runs read back unchanged (the schema version stays, so older ThinkTrace still opens it)."""
    import store.db as db

    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    run_id, _, _ = make_run(store)
    runner.execute(store, run_id, ScriptedLM(doubling_script), None)
    db._engines.pop(store.url).dispose()
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute("ALTER TABLE run DROP COLUMN worker_host")
    con.execute("ALTER TABLE run DROP COLUMN heartbeat_at")
    con.commit()
    assert "heartbeat_at" not in [r[1] for r in con.execute("PRAGMA table_info(run)")]
    con.close()
    summary = run_summary(store, run_id)
    assert summary.status == "done" and summary.problems_done == 4
    con = sqlite3.connect(tmp_path / "old.db")
    columns = [r[1] for r in con.execute("PRAGMA table_info(run)")]
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    con.close()
    assert {"worker_host", "heartbeat_at"} <= set(columns) and version == str(m.SCHEMA_VERSION)


def test_problems_are_shared_between_runs_not_duplicated(store):
    make_run(store)
    make_run(store)
    with store.session() as session:
        assert len(session.exec(select(m.Problem)).all()) == 4
    assert len(list_runs(store)) == 2


def test_run_ids_resolve_from_a_unique_prefix(store):
    run_id, *_ = make_run(store)
    assert resolve_run_id(store, run_id[:6]) == run_id
    with pytest.raises(UserError, match="no run"):
        resolve_run_id(store, "zzzz")


def test_id_prefixes_are_matched_literally_not_as_like_patterns(store):
    from store.sweeps import create_sweep, resolve_ref, resolve_sweep_id

    run_id, *_ = make_run(store)
    sweep_id = create_sweep(store, "s", {}, sweep_id="ab%_cd-sweep")
    for pattern in ("%", "_", "_" * 8, "%-%"):
        with pytest.raises(UserError, match="no run with id"):
            resolve_run_id(store, pattern)
    with pytest.raises(UserError, match="no sweep with id"):
        resolve_sweep_id(store, "%")
    with pytest.raises(UserError, match="no run or sweep with id"):
        resolve_ref(store, "_")
    assert resolve_sweep_id(store, "ab%_") == sweep_id and resolve_ref(store, "ab%_c") == ("sweep", sweep_id)
    assert resolve_ref(store, run_id[:6]) == ("run", run_id)


def test_the_database_uses_wal_and_records_its_schema_version(store, tmp_path):
    store.engine
    conn = sqlite3.connect(tmp_path / "thinktrace.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(m.SCHEMA_VERSION)


def test_a_store_is_checked_once_however_often_it_is_used(tmp_path, monkeypatch):
    """The CLI opens the store (pre-check: before the slow model load), then writes through it: the
    file is pre-checked once, not again when the engine is made."""
    import store.db as db

    checked = []
    real = db._precheck
    monkeypatch.setattr(db, "_precheck", lambda s: checked.append(s.url) or real(s))
    opened = Store.open(str(tmp_path / "once.db"))
    make_run(opened)
    assert list_runs(opened) and opened.schema_version() == m.SCHEMA_VERSION
    assert checked == [f"sqlite:///{tmp_path / 'once.db'}"]


def test_a_database_from_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '999')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UserError, match="newer"):
        Store.open(str(path))
    with pytest.raises(UserError, match="newer"):
        Store(f"sqlite:///{path}").engine
    assert path.read_bytes() == before


def test_a_database_in_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store.open(str(tmp_path / "nope" / "x.db"))


def test_an_unreachable_database_server_is_one_line_whichever_way_it_is_opened():
    import socket

    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://thinktrace@127.0.0.1:{port}/nothing"
    for open_store in (Store.open, lambda url: Store(url).engine):  # the CLI's pre-check; first use
        with pytest.raises(UserError, match="cannot open database .*Connection refused") as error:
            open_store(url)
        assert "\n" not in str(error.value)  # libpq adds "\n\tIs the server running ...?"
    with pytest.raises(UserError, match="not a database path or URL"):  # was a ValueError traceback
        Store(f"postgresql+psycopg://u@127.0.0.1:{port},127.0.0.1:2/x")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not a database " * 100)
    with pytest.raises(UserError, match="not a ThinkTrace database"):
        Store.open(str(path))


def test_an_empty_problem_list_creates_no_run(store):
    request = runner.RunRequest(strategy="cot", dataset="unit").validate()
    with pytest.raises(UserError, match="no problems"):
        runner.create_run(store, request, [], ScriptedLM(["x"]), None)
    assert list_runs(store) == []
