"""The app, page by page, through Streamlit's AppTest: empty databases say what to do next, runs of
every strategy render, a click on a node shows its path, links restore a view, bad input is one
clear message. Runs come from the real runner with a scripted model on a temp SQLite file."""
from __future__ import annotations

import base64
import json
import math
import re
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from thinktrace import launch, runner
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.strategies import NEEDS, lookup, names
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from reasoning.estimators import roc_auc
from store import Store
from store.analysis import final_paths
from store.runs import run_problems, run_results, tree_nodes
from tests.ttt_fixtures import ttt_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/run.py", "pages/tree.py", "pages/verifier.py", "pages/compare.py"]
PROBLEMS = [Problem(key=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), dataset="unit") for i in range(3)]


def script(prompt: str, sample: int, call: int) -> str:
    """Right on even samples, off by one on odd ones (so votes, scores and outcomes all vary)."""
    i = int(prompt.split("What is ")[-1].split(" ")[0]) if "What is " in prompt else 1
    return f"Add {i} and {i}: {i} + {i} = {2 * i}.\n\nCheck the sum once more.\n\nThe answer is {2 * i + sample % 2}."


def judge(prompt: str) -> float:
    """A scripted self-evaluation that likes even final answers (right ones, here) more, with
    deterministic noise so right and wrong scores overlap as a real verifier's do."""
    noise = (zlib.crc32(prompt.encode()) % 1000) / 1000 - 0.5  # in [-0.5, 0.5)
    tail = prompt.rsplit("The answer is", 1)
    if len(tail) == 2 and tail[1].strip()[:1].isdigit():
        base = 0.65 if int(tail[1].strip().split(".")[0]) % 2 == 0 else 0.4
        return min(1.0, max(0.0, base + 0.5 * noise))
    return 0.5 + 0.3 * noise


# compute_optimal with a hand-made plan (as `policy build` stores it): a confident probe keeps its answer
COMPUTE_OPTIMAL = dict(policy="hand", budget=300, plan={
    "budget": 300, "probe": "verifier_score", "edges": [-0.5], "aggregate": "last", "verifier": "self_eval",
    "arms": [{"strategy": "cot", "knobs": {}, "label": "cot"},
             {"strategy": "best_of_n", "knobs": {"n": 2, "select": "weighted"}, "label": "best_of_n weighted n=2"}]})


def make_runs(store: Store) -> dict[str, str]:
    """One finished run per strategy in the dispatch table (verifier self_eval where one is needed)."""
    ids = {}
    for name in names():
        if lookup(name).trains:  # learns from demonstrations: its own tasks and a model that knows them
            ids[name] = ttt_run(store, steps=4, n=4, limit=3)
            continue
        lm = ScriptedLM(script, judge=judge)
        spec = "self_eval" if lookup(name).verifier == NEEDS else None
        request = runner.RunRequest(strategy=name, dataset="unit", model="scripted", verifier=spec,
                                    config=SearchConfig(n=4, beam_width=2, max_steps=3, expansions=4, width=2,
                                                        max_new_tokens=64, think_tokens=8,
                                                        **(COMPUTE_OPTIMAL if name == "compute_optimal" else {}))
                                    ).validate()
        verifier = load_verifier(spec, lm)
        ids[name] = runner.create_run(store, request, PROBLEMS, lm, verifier)
        runner.execute(store, ids[name], lm, verifier)
    return ids


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "runs.db"
    store = Store(f"sqlite:///{path}")
    return store, make_runs(store)


@pytest.fixture()
def db(filled, monkeypatch):
    store, ids = filled
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    return store, ids


@pytest.fixture()
def empty_db(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKTRACE_DB", str(tmp_path / "empty.db"))
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    return f"sqlite:///{tmp_path / 'empty.db'}"


def open_page(page: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if page:
        for k, v in params.items():
            at.query_params[k] = str(v)
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(text: str) -> str:
    """A value as the browser shows it: Markdown escapes (pages.common.md_escape) read, word joiners gone."""
    return re.sub(r"\\(.)", r"\1", str(text)).replace("\u2060", "")


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "code")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def chart_points(at: AppTest, index: int = 0) -> list[int]:
    """The node seqs a tree chart plots (customdata of its marker traces; Plotly 7 base64-packs arrays)."""
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    seqs = []
    for trace in spec["data"]:
        data = trace.get("customdata")
        if data is None or trace.get("name") == "clicked":
            continue
        if isinstance(data, dict):
            data = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
        seqs += [int(s) for s in data]
    return sorted(seqs)


# ------------------------------------------------------------------ empty database
@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_says_what_to_do_on_an_empty_database(empty_db, page):
    at = open_page(page)
    assert not at.error
    advice = " ".join(i.value for i in at.info)
    assert ("Start" in advice or "start" in advice or "Set one up" in advice), advice


# ------------------------------------------------------------------ runs of every strategy
def test_home_lists_recent_runs_by_name(db):
    store, ids = db
    at = open_page()
    table = at.dataframe[0].value
    assert set(table["strategy"]) == set(names())
    assert table["open"].str.startswith("tree?run=").all()


@pytest.mark.parametrize("strategy", names())
def test_tree_page_draws_every_node_of_each_strategy(db, strategy):
    store, ids = db
    at = open_page("pages/tree.py", run=ids[strategy], problem=2)
    problem = run_problems(store, ids[strategy])[1]
    nodes = tree_nodes(store, ids[strategy], problem.problem_id)
    assert chart_points(at) == [n.seq for n in nodes]
    assert not at.error
    # with no click yet, the path shown is the one the strategy chose
    assert f"Path to node #{problem.node_seq}" in texts(at)


def test_tree_page_says_what_a_compute_optimal_policy_chose(db):
    store, ids = db
    at = open_page("pages/tree.py", run=ids["compute_optimal"], problem=1)
    [info] = [i.value for i in at.info if "Compute-optimal policy" in i.value]
    assert "predicted difficulty bin" in info and ("cot" in info or "best_of_n" in info)


def test_chains_show_a_vote_table_beside_the_fan(db):
    store, ids = db
    at = open_page("pages/tree.py", run=ids["self_consistency"], problem=1)
    votes = at.dataframe[0].value
    assert sorted(votes["answer"]) == ["0", "1"] and votes["votes"].sum() == 4
    at = open_page("pages/tree.py", run=ids["beam_search"], problem=1)
    assert "Votes" not in texts(at)  # a real tree, not a fan


@pytest.mark.parametrize("page", ["pages/verifier.py", "pages/compare.py", "pages/run.py"])
def test_other_pages_render_every_strategy_without_errors(db, page):
    store, ids = db
    for strategy, rid in ids.items():
        at = open_page(page, run=rid)
        assert not at.error, (strategy, [e.value for e in at.error])


# ------------------------------------------------------------------ clicks and links
def test_clicking_a_node_shows_its_path_and_goes_into_the_link(db):
    store, ids = db
    rid = ids["self_consistency"]
    at = open_page("pages/tree.py", run=rid, problem=3)
    problem = run_problems(store, rid)[2]
    nodes = tree_nodes(store, rid, problem.problem_id)
    wrong_leaf = next(n for n in nodes if n.correct is False)
    chart_key = f"tree_{rid}_{problem.position}"
    at.session_state[chart_key] = {"selection": {"points": [{"customdata": wrong_leaf.seq}]}}
    at.run()
    shown = texts(at)
    assert f"Path to node #{wrong_leaf.seq}" in shown
    assert "✗ wrong" in shown and "The answer is 5" in shown.replace("\\", "")
    assert at.query_params["node"] == str(wrong_leaf.seq)
    ring = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if t.get("name") == "clicked"]
    assert len(ring) == 1


def test_a_link_restores_run_problem_and_node(db):
    store, ids = db
    rid = ids["best_of_n"]
    at = open_page("pages/tree.py", run=rid[:8], problem=2, node=3)
    assert at.selectbox(key="run").value == rid
    assert at.selectbox(key=f"problem_{rid}").value == 1
    assert "Path to node #3" in texts(at)
    assert at.query_params["run"] == rid


def test_replay_slider_cuts_the_tree_in_creation_order(db):
    store, ids = db
    at = open_page("pages/tree.py", run=ids["beam_search"], problem=1)
    slider = at.slider(key=f"replay_tree_{ids['beam_search']}_0")
    slider.set_value(4).run()
    assert chart_points(at) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("page", ["pages/tree.py", "pages/verifier.py", "pages/compare.py"])
def test_an_unknown_run_in_the_link_is_one_clear_message(db, page):
    at = open_page(page, run="0000dead")
    assert [e.value for e in at.error] and "no run with id '0000dead'" in plain(at.error[0].value)
    at = open_page(page, run="no-such-run")
    assert [e.value for e in at.error] and "'no-such-run' is not a run id" in plain(at.error[0].value)


def test_an_unknown_problem_or_node_in_the_link_falls_back_with_a_message(db):
    store, ids = db
    at = open_page("pages/tree.py", run=ids["cot"], problem=99, node=1000)
    errors = " ".join(e.value for e in at.error)
    assert "Problem 99 is not in this run" in errors and "Node 1000 is not in this tree" in errors


def test_a_corrupt_jsonl_upload_is_one_message_and_blocks_start(db):
    at = open_page("pages/run.py")
    at.radio(key="source").set_value("Upload JSONL").run()
    at.get("file_uploader")[0].set_value(("broken.jsonl", b'{"question": "1+1?", "answer": "2"}\n{not json\n',
                                          "application/jsonl"))
    at.run()
    assert len(at.error) == 1 and "broken.jsonl" in plain(at.error[0].value)
    assert "line 2: not valid JSON" in plain(at.error[0].value)
    assert at.button(key="start").disabled


def test_a_good_upload_is_counted_and_goes_into_the_command(db):
    at = open_page("pages/run.py")
    at.radio(key="source").set_value("Upload JSONL").run()
    rows = b"".join(json.dumps({"question": f"{i} + 1?", "answer": str(i + 1)}).encode() + b"\n" for i in range(5))
    at.get("file_uploader")[0].set_value(("mine.jsonl", rows, "application/jsonl"))
    at.run()
    assert not at.error and "5 problems read from mine.jsonl" in plain(texts(at))
    assert "mine-" in at.code[0].value and not at.button(key="start").disabled


# ------------------------------------------------------------------ the Run page's form
def test_run_form_shows_only_the_strategy_knobs_and_the_equivalent_command(db):
    at = open_page("pages/run.py")
    command = at.code[0].value
    assert "--strategy self_consistency" in command and "--dataset arith:1" in command and "--limit 3" in command
    at.selectbox(key="strategy").set_value("best_of_n").run()
    labels = {w.label for w in at.number_input} | {w.label for w in at.selectbox}
    assert {"n", "temperature", "select", "aggregate"} <= labels and "beam width" not in labels
    # best-of-N needs a verifier: the default lab reasoner brings its own PRM, SmolLM2 judges itself
    assert "none" not in at.selectbox(key="verifier_needed_lab").options
    assert "--model lab" in at.code[0].value and "--verifier prm:lab" in at.code[0].value
    at.radio(key="model_kind").set_value("smollm2 (embedded chat LLM)").run()
    assert at.selectbox(key="verifier_needed").value == "self_eval"
    assert "--model smollm2" in at.code[0].value and "--verifier self_eval" in at.code[0].value
    at.selectbox(key="strategy").set_value("beam_search").run()
    labels = {w.label for w in at.number_input}
    assert {"beam width", "max steps"} <= labels and "select" not in {w.label for w in at.selectbox}
    assert "--beam-width 4" in at.code[0].value


def test_a_bad_combination_is_refused_before_a_process_starts(db):
    at = open_page("pages/run.py")
    at.selectbox(key="strategy").set_value("beam_search").run()
    at.number_input(key="knob_n").set_value(3).run()  # N must be a multiple of the beam width
    assert at.error and at.button(key="start").disabled


def test_a_typed_question_becomes_a_problem_file_graded_only_with_a_gold_answer(db):
    at = open_page("pages/run.py")
    at.radio(key="source").set_value("Type a question").run()
    at.text_area(key="question").input("A farmer has 12 cows and buys 5 more. How many cows?").run()
    assert not at.button(key="start").disabled  # no gold: the run starts, ungraded
    assert "will not be graded" in " ".join(c.value for c in at.caption)
    path = Path(at.code[0].value.split("--dataset ")[1].split()[0])
    assert json.loads(path.read_text()) == {"question": "A farmer has 12 cows and buys 5 more. How many cows?",
                                            "answer": None}
    at.text_input(key="gold").input("17").run()
    path = Path(at.code[0].value.split("--dataset ")[1].split()[0])
    assert json.loads(path.read_text()) == {"question": "A farmer has 12 cows and buys 5 more. How many cows?",
                                            "answer": "17"}


def test_run_page_shows_a_finished_runs_progress(db):
    store, ids = db
    at = open_page("pages/run.py", run=ids["self_consistency"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Problems"] == "3 / 3" and metrics["Status"] == "done"
    assert chart_points(at)  # the latest tree is drawn


def test_a_run_on_another_machine_shows_where_it_runs_and_no_stop_button(db):
    """Its pid belongs to another machine (here: this very test process, which a Stop would kill)."""
    import os

    from store import models as m

    store, ids = db
    run_id = ids["self_consistency"]
    with store.session() as session:
        run = session.get(m.Run, run_id)
        status = run.status
        run.status, run.worker_pid, run.worker_host, run.heartbeat_at = "running", os.getpid(), "gpu-box-7", m.utcnow()
    try:
        at = open_page("pages/run.py", run=run_id)
        assert {m.label: m.value for m in at.metric}["Status"] == "running"
        assert "Running on gpu-box-7: stop it there" in plain(" ".join(c.value for c in at.caption))
        assert not [b for b in at.button if b.label == "Stop"]
    finally:
        with store.session() as session:
            run = session.get(m.Run, run_id)
            run.status, run.worker_pid, run.worker_host, run.heartbeat_at = status, None, None, None


def test_a_run_that_fails_to_start_shows_the_cli_error(db, tmp_path):
    store, _ = db
    spec = launch.RunSpec(strategy="cot", dataset="nonsense:1", limit=1, knobs={"max_new_tokens": 8})
    started = launch.start_run(spec, store.url)
    deadline = time.time() + 60
    while launch.child_state(started.run_id)[0] == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert launch.child_state(started.run_id) == ("exited", 2)
    assert launch.last_error(started.log).startswith("error: unknown problem set 'nonsense:1'")
    at = open_page("pages/run.py", run=started.run_id)
    assert "The run did not start: unknown problem set 'nonsense:1'" in plain(at.error[0].value)


def test_demo_button_starts_a_run_and_opens_the_run_page(db, monkeypatch):
    store, ids = db
    seen = {}

    def fake_start(spec, db_url, run_id=None):
        seen["spec"] = spec
        return launch.Launch(run_id=ids["cot"], pid=0, log=Path("/dev/null"), argv=[], started=time.time())

    monkeypatch.setattr(launch, "start_run", fake_start)
    at = open_page()
    at.button[0].click().run()
    assert seen["spec"].strategy == "best_of_n" and seen["spec"].dataset == "arith:4"
    assert seen["spec"].knobs == {"n": 8, "max_new_tokens": 256} and seen["spec"].limit == 10
    assert seen["spec"].model == "lab" and seen["spec"].verifier == "prm:lab"
    assert at.query_params["run"] == ids["cot"] and at.title[0].value == "Run"


def test_display_command_repeats_the_run(tmp_path):
    spec = launch.RunSpec(strategy="best_of_n", dataset="arith:2", limit=5, verifier="self_eval", seed=3,
                          knobs={"n": 8, "temperature": 0.7, "max_new_tokens": 64, "select": "naive"}, name="my run")
    line = launch.display_command(spec, f"sqlite:///{tmp_path}/x.db")
    assert line == (f"python -m reasoning run --strategy best_of_n --dataset arith:2 --limit 5 --model lab "
                    f"--verifier self_eval --seed 3 --n 8 --temperature 0.7 --max-new-tokens 64 --select naive "
                    f"--name 'my run' --db {tmp_path}/x.db")
    multi = launch.display_command(spec, f"sqlite:///{tmp_path}/x.db", multiline=True)
    assert multi.split(" \\\n  ")[:3] == ["python -m reasoning run", "--strategy best_of_n", "--dataset arith:2"]


# ------------------------------------------------------------------ verifier and compare
def test_verifier_page_reports_the_auc_of_the_stored_scores(db):
    store, ids = db
    rid = ids["best_of_n"]
    at = open_page("pages/verifier.py", run=rid)
    paths = [p for p in final_paths(store, [rid]) if p.path_score is not None]
    expected = roc_auc([p.path_score for p in paths], [p.correct for p in paths])
    auc = next(m.value for m in at.metric if m.label.startswith("ROC AUC"))
    assert expected is not None and auc == f"{expected:.2f}"
    links = at.dataframe[0].value["open"]
    assert links.str.match(rf"tree\?run={rid}&problem=\d+&node=\d+").all()
    assert len(at.get("plotly_chart")) == 4


def test_compare_page_matrix_matches_the_results(db):
    store, ids = db
    a, b = ids["cot"], ids["self_consistency"]
    at = open_page("pages/compare.py", run=a)
    at.multiselect(key="compare_runs").set_value([a, b]).run()
    assert not at.error
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    z = spec["data"][0]["z"]
    if isinstance(z, dict):  # a base64-packed 2-D array
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
    expected = [[1.0 if r.correct else 0.0 for r in run_results(store, rid)] for rid in (a, b)]
    assert np.allclose(np.asarray(z, float).reshape(2, -1), expected)
    assert len(at.get("plotly_chart")) == 4  # cost, matrix, two trees


# ------------------------------------------------------------------ share links
def share_link(at: AppTest) -> str:
    """The page's "Share link" box (relative under AppTest: there is no browser URL)."""
    links = [c.value for c in at.code if c.value.startswith(("?", "http"))]
    assert len(links) == 1, [c.value for c in at.code]
    return links[0]


def test_share_url_joins_the_browser_url_and_the_view():
    from pages.common import compare_link, share_url

    assert share_url("http://host:8501/tree", {"run": "abc", "problem": 2, "node": 7}) == \
        "http://host:8501/tree?run=abc&problem=2&node=7"
    assert share_url("http://host:8501/compare?stale=1", {"runs": "a,b"}) == "http://host:8501/compare?runs=a,b"
    assert share_url(None, {"run": "abc", "problem": None}) == "?run=abc"
    assert share_url("http://h/tree", {"q": "a b&c"}) == "http://h/tree?q=a%20b%26c"
    assert compare_link(["a", "b"]) == "compare?runs=a,b"


def test_the_tree_share_link_names_run_problem_and_node_in_full(db):
    store, ids = db
    rid = ids["best_of_n"]
    at = open_page("pages/tree.py", run=rid[:8], problem=2, node=3)
    assert share_link(at) == f"?run={rid}&problem=2&node=3"
    again = open_page("pages/tree.py", **dict(part.split("=") for part in share_link(at)[1:].split("&")))
    assert again.selectbox(key="run").value == rid and "Path to node #3" in texts(again)


def test_compare_reads_runs_and_the_older_run_form_and_writes_runs(db):
    store, ids = db
    a, b, c = ids["cot"], ids["self_consistency"], ids["best_of_n"]
    at = open_page("pages/compare.py", runs=f"{a},{b[:8]}")
    assert at.multiselect(key="compare_runs").value == [a, b]
    assert at.query_params["runs"] == f"{a},{b}" and "run" not in at.query_params
    assert share_link(at) == f"?runs={a},{b}&problem=1"
    at = open_page("pages/compare.py", run=f"{a},{b},{c}")  # links written before `runs=`
    assert at.multiselect(key="compare_runs").value == [a, b, c] and not at.error
    assert share_link(at).startswith(f"?runs={a},{b},{c}")


def test_the_library_compare_link_opens_those_runs_in_compare(db):
    from pages.common import compare_link

    store, ids = db
    link = compare_link([ids["cot"], ids["dvts"]])  # what the Library page links to
    page, query = link.split("?")
    at = open_page(f"pages/{page}.py", **dict(part.split("=") for part in query.split("&")))
    assert at.multiselect(key="compare_runs").value == [ids["cot"], ids["dvts"]]


def test_verifier_restores_a_set_of_runs_and_shares_it(db):
    store, ids = db
    a, b = ids["best_of_n"], ids["beam_search"]
    at = open_page("pages/verifier.py", runs=f"{a},{b}")
    assert at.multiselect(key="verifier_runs").value == [a, b] and not at.error
    assert share_link(at) == f"?runs={a},{b}"
    at.multiselect(key="verifier_runs").set_value([b]).run()
    assert share_link(at) == f"?run={b}" and "runs" not in at.query_params


def test_the_run_page_shares_the_run_it_shows(db):
    store, ids = db
    at = open_page("pages/run.py", run=ids["cot"][:8])
    assert share_link(at) == f"?run={ids['cot']}"  # a prefix in the link, the full id in the share link


# ------------------------------------------------------------------ read-only deployment
@pytest.fixture()
def read_only_db(tmp_path, monkeypatch):
    """Read-only mode over a database with a finished, a running and an interrupted run: the states
    that offer stop and resume buttons in a normal deployment."""
    from store import models as m
    from tests.test_bundle import make_run

    store = Store(f"sqlite:///{tmp_path / 'shared.db'}")
    ids = {state: make_run(store) for state in ("done", "running", "interrupted")}
    with store.session() as session:
        for state, rid in ids.items():
            session.get(m.Run, rid).status = state
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    monkeypatch.setenv("THINKTRACE_READONLY", "1")
    return store, ids


ACTIONS = ("start", "stop", "resume", "delete", "save", "demo", "import")


@pytest.mark.parametrize("page", [None, *PAGES, "pages/library.py"])
@pytest.mark.parametrize("state", ["done", "running", "interrupted"])
def test_read_only_pages_offer_nothing_that_runs_stops_deletes_or_imports(read_only_db, page, state):
    store, ids = read_only_db
    at = open_page(page, run=ids[state])
    assert not at.error, [e.value for e in at.error]
    if page is None:  # AppTest shows app.py's sidebar on the default page only (the browser test sees it on Library)
        assert "read-only" in " ".join(c.value for c in at.sidebar.caption)
    labels = [b.label.lower() for b in at.button]
    assert not [label for label in labels if any(word in label for word in ACTIONS)], labels
    assert len(at.file_uploader) == 0 and len(at.get("form")) == 0


def test_read_only_run_page_still_shows_progress_and_says_why_there_is_no_form(read_only_db):
    store, ids = read_only_db
    at = open_page("pages/run.py", run=ids["interrupted"])
    assert "shared read-only" in at.info[0].value
    assert {m.label: m.value for m in at.metric}["Status"] == "interrupted"
    assert chart_points(at)  # the tree is still drawn


def test_read_only_refuses_to_spawn_a_run_even_if_asked(read_only_db):
    from reasoning.errors import UserError

    store, _ = read_only_db
    with pytest.raises(UserError, match="read-only"):
        launch.start_run(launch.RunSpec(strategy="cot", dataset="arith:1", limit=1), store.url)


def test_the_run_form_starts_runs_on_a_server_and_refuses_one_without_its_url(db):
    at = open_page("pages/run.py")
    assert "--backend" not in at.code[0].value  # this machine by default: the command stays short
    at.radio(key="backend").set_value("openai").run()
    assert "needs --base-url" in at.error[0].value and at.button(key="start").disabled
    at.text_input(key="base_url").input("http://127.0.0.1:8000/v1").run()
    assert not at.error and not at.button(key="start").disabled
    assert "--backend openai" in at.code[0].value and "--base-url http://127.0.0.1:8000/v1" in at.code[0].value
    assert "--model-params" not in at.code[0].value  # optional: only when given
    at.number_input(key="model_params").set_value(7.6e9).run()
    assert "--model-params 7600000000" in at.code[0].value and not at.button(key="start").disabled


def test_the_run_form_sets_the_problems_in_flight_and_the_command_repeats_it(db):
    at = open_page("pages/run.py")
    assert "--concurrency" not in at.code[0].value  # the backend's default unless asked
    assert "default: 16" in at.number_input(key="concurrency").placeholder
    at.number_input(key="concurrency").set_value(4).run()
    assert "--concurrency 4" in at.code[0].value and not at.button(key="start").disabled
    at.radio(key="backend").set_value("vllm").run()
    assert "default: 256" in at.number_input(key="concurrency").placeholder


def test_a_run_spec_on_a_server_repeats_as_the_cli_command(tmp_path):
    spec = launch.RunSpec(strategy="cot", dataset="arith:1", backend="openai",
                          backend_options={"base_url": "http://gpu-box:8000/v1"})
    line = launch.display_command(spec, f"sqlite:///{tmp_path}/x.db")
    assert "--model lab --backend openai --base-url http://gpu-box:8000/v1 --seed 0" in line


# ------------------------------------------------------------------ hostile and careless data (issue 14)
# What would render as an image, a link or HTML if a page passed stored or linked text to Markdown.
HOSTILE = ("![x](http://127.0.0.1:9/x.png) [click](http://evil.example/) <img src=x> "
           "<a href='http://evil.example/'>a</a> www.evil.example mail@evil.example")
RAW = re.compile(r"\]\(http|(?<!\\)<(img|a )|://|www\.|@evil")  # unescaped, unbroken
MARKDOWN_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title")


def make_hostile_runs(store: Store) -> list[str]:
    """A failed and an interrupted run as another program may have written the database: markup in
    every text a page shows (name, error, strategy, verifier, dataset, model, questions, answers), an
    infinite duration and score, negative token and problem counts."""
    from sqlmodel import select

    from store import models as m
    from tests.test_bundle import make_run

    ids = [make_run(store), make_run(store)]  # before the questions change: the scripted model reads them
    with store.session() as session:
        for run_id, status in zip(ids, ("failed", "interrupted")):
            run = session.get(m.Run, run_id)
            for field in ("name", "error", "strategy", "verifier", "dataset", "model_name"):
                setattr(run, field, f"{field} {HOSTILE}")
            run.status, run.wall_seconds, run.tokens, run.n_problems = status, math.inf, -100, -5
        for problem in session.exec(select(m.Problem)).all():
            problem.question = f"question {HOSTILE}"
        for result in session.exec(select(m.Result)).all():
            result.answer, result.wall_seconds = f"answer {HOSTILE}", math.inf
        for node in session.exec(select(m.Node).where(m.Node.answer.is_not(None))).all():
            node.answer, node.score, node.path_score = f"answer {HOSTILE}", math.inf, math.inf
    return ids


@pytest.fixture(params=[False, True], ids=["owner", "read-only"])
def hostile_db(request, tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'hostile.db'}")
    ids = make_hostile_runs(store)
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    if request.param:
        monkeypatch.setenv("THINKTRACE_READONLY", "1")
    else:
        monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    return store, ids


def rendered_markdown(at: AppTest) -> list[str]:
    """The text of every element that renders Markdown, metric labels included."""
    return [str(e.value) for kind in MARKDOWN_ELEMENTS for e in getattr(at, kind)] + [m.label for m in at.metric]


HOSTILE_PAGES = [None, "pages/run.py", "pages/tree.py", "pages/verifier.py", "pages/compare.py", "pages/library.py",
                 "pages/budget.py"]


@pytest.mark.parametrize("page", HOSTILE_PAGES)
def test_stored_markup_is_shown_as_text_and_odd_numbers_never_crash_a_page(hostile_db, page):
    """Markdown and HTML in names, errors, questions, verifiers and strategies once rendered as images
    and links; an infinite wall_seconds crashed Home (OverflowError in duration) and a negative problem
    total made st.progress raise on the Run page."""
    store, ids = hostile_db
    at = open_page(page, run=ids[0], runs=",".join(ids))  # open_page asserts no exception
    if page == "pages/library.py":
        at.multiselect(key="library_selected").set_value([ids[0]]).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = rendered_markdown(at)
    leaks = [s for s in shown if RAW.search(s)]
    assert not leaks, leaks
    if page in ("pages/run.py", "pages/tree.py", "pages/compare.py"):  # names, errors, questions: as typed
        assert HOSTILE in plain("\n".join(shown))
    for chart in at.get("plotly_chart"):  # plotly renders its text as HTML too
        spec = chart.proto.spec
        assert "<img" not in spec and "<a " not in spec and "<a href" not in spec
    if page is None:
        assert set(at.dataframe[0].value["time"]) == {"–"}
    if page == "pages/run.py":
        assert {m.label: m.value for m in at.metric}["Elapsed"] == "–"
        assert 0 <= at.get("progress")[0].proto.value <= 100


def test_md_escape_leaves_no_markup_and_shows_the_same_characters():
    from pages.common import md_escape

    escaped = md_escape(HOSTILE + " **b** # h `c` $x$ | t | &amp; \\")
    assert not RAW.search(escaped) and RAW.search(HOSTILE)
    assert plain(escaped) == HOSTILE + " **b** # h `c` $x$ | t | &amp; \\"


@pytest.mark.parametrize("readonly", [False, True], ids=["owner", "read-only"])
def test_a_run_id_in_the_link_is_checked_by_form_and_never_names_a_file(tmp_path, monkeypatch, readonly):
    """`?run=../secret` (or an absolute path) showed the last line of `<that path>.log` on the Run
    page ("The run did not start: ..."), in read-only mode too, and viewing created a logs folder
    beside the database."""
    from tests.test_bundle import make_run

    folder = tmp_path / "data"
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'runs.db'}")
    make_run(store), make_run(store)  # two: Compare needs them before it reads the link
    (folder / "secret.log").write_text("error: TOPSECRET by a relative path\n")
    (tmp_path / "abs.log").write_text("error: TOPSECRET by an absolute path\n")
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    if readonly:
        monkeypatch.setenv("THINKTRACE_READONLY", "1")
    else:
        monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    for ref in ("../secret", str(tmp_path / "abs"), "%", "0000dead"):
        pages = PAGES + ["pages/budget.py"] if ref == "../secret" else ["pages/run.py"]
        for page in pages:
            at = open_page(page, run=ref, runs=ref, sweep=ref)
            shown = plain(texts(at))
            assert "TOPSECRET" not in shown, (page, ref)
            if ref != "0000dead":
                assert "is not a run id" in shown or "is not a sweep id" in shown, (page, ref, shown)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == []  # no logs folder made by viewing


def test_log_path_refuses_anything_but_an_id_and_creates_nothing(tmp_path):
    from reasoning.errors import UserError

    url = f"sqlite:///{tmp_path / 'x.db'}"
    for bad in ("../x", "/etc/passwd", "a/b", "", "x" * 37, "ab%", "3f9c\n"):
        with pytest.raises(UserError, match="is not a run id"):
            launch.log_path(url, bad)
    assert launch.log_path(url, "3f9c01ab-0000").name == "3f9c01ab-0000.log"
    assert not (tmp_path / launch.LOG_DIR).exists()


@pytest.fixture()
def server_runs(tmp_path, monkeypatch):
    """Two interrupted runs on an OpenAI-compatible server: one imported (no URL stored, as imports
    drop it), one made here with its URL; _spawn records the command instead of starting it."""
    from store import models as m
    from tests.test_bundle import make_run

    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    ids = {}
    for kind, options in (("imported", {}), ("local", {"base_url": "http://gpu-box:8000/v1"})):
        ids[kind] = make_run(store)
        with store.session() as session:
            run = session.get(m.Run, ids[kind])
            run.params = {**run.params, "backend": "openai", "backend_options": options}
            run.status = "interrupted"
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    spawned: list[list[str]] = []

    def record(run_id, argv, db_url):
        spawned.append(argv)
        return launch.Launch(run_id=run_id, pid=0, log=Path("/dev/null"), argv=argv, started=time.time())

    monkeypatch.setattr(launch, "_spawn", record)
    return ids, spawned


def test_resuming_a_server_run_without_a_stored_url_asks_for_it_and_sends_only_that(server_runs):
    """An imported run's server address is not imported (policy P1): Resume asks for the URL and
    passes what was typed as `resume --base-url`, never a URL from the data."""
    ids, spawned = server_runs
    rid = ids["imported"]
    at = open_page("pages/run.py", run=rid)
    assert at.button(key="resume").disabled  # nothing to send the key to yet
    at.text_input(key=f"resume_base_url_{rid}").input("http://127.0.0.1:8000/v1").run()
    assert not at.button(key="resume").disabled
    at.button(key="resume").click().run()
    assert spawned[-1][3:5] == ["resume", rid] and spawned[-1][-1] == "--base-url=http://127.0.0.1:8000/v1"


def test_a_server_run_made_here_resumes_on_its_stored_url_as_before(server_runs):
    ids, spawned = server_runs
    at = open_page("pages/run.py", run=ids["local"])
    assert not [t for t in at.text_input if t.key.startswith("resume_base_url")]
    at.button(key="resume").click().run()
    assert spawned[-1][3:5] == ["resume", ids["local"]] and not any(a.startswith("--base-url") for a in spawned[-1])


def test_the_project_streamlit_config_binds_locally_and_sends_no_statistics():
    import tomllib

    root = Path(APP).parent
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["browser"]["gatherUsageStats"] is False
    sharing = (root / "docs" / "sharing.md").read_text() + (root / "README.md").read_text()
    serve = [line for line in sharing.splitlines() if "THINKTRACE_READONLY=1 bash scripts/dev.sh app" in line]
    assert serve and all("--server.address 0.0.0.0" in line for line in serve)  # serving others stays explicit


def test_a_read_only_app_creates_no_database_where_there_is_none(tmp_path, monkeypatch):
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("THINKTRACE_DB", str(missing))
    monkeypatch.setenv("THINKTRACE_READONLY", "1")
    for page in [None, *PAGES, "pages/library.py", "pages/budget.py"]:
        at = open_page(page)
        assert "a read-only app creates none" in plain(at.error[0].value), page
    assert list(tmp_path.iterdir()) == []
