"""Traces from search-and-learn and llm-reasoners become runs that can be explored, exported and
imported like our own, and a malformed peer file is one clear error."""
from __future__ import annotations

import json

import pytest

from reasoning.errors import UserError
from thinktrace.peers import from_llm_reasoners, from_search_and_learn, import_peer
from store.runs import list_runs, run_results, run_summary, tree_nodes

SAL_ROWS = [
    {   # a saved HF dataset row from search-and-learn's best_of_n + score(): completions, PRM scores, preds
        "problem": "What is $2 + 3$?", "answer": "5", "unique_id": "test/algebra/1.json", "level": 1,
        "completions": ["## Step 1: Add\n2 + 3 = 5\n\n## Step 2: Answer\nThe final answer is $\\boxed{5}$.",
                        "## Step 1: Add\n2 + 3 = 6\n\nThe final answer is $\\boxed{6}$.",
                        "We add.\n\n2 + 3 = 5\n\nSo $\\boxed{5}$"],
        "scores": [[0.9, 0.95], [0.8, 0.1], [0.5, 0.7, 0.6]],
        "agg_scores": [0.95, 0.1, 0.6],
        "completion_tokens": [30, 20, 25],
        "pred_weighted@1": "\\boxed{5}", "pred_weighted@2": "\\boxed{6}", "pred_weighted@4": "\\boxed{5}",
        "pred_maj@4": "\\boxed{5}", "pred_naive@4": "\\boxed{5}",
    },
    {
        "problem": "What is $10 / 4$?", "answer": "\\frac{5}{2}", "unique_id": "test/algebra/2.json", "level": "Level 2",
        "completions": ["10 / 4 = 2\n\nThe answer is $\\boxed{2}$.", "10/4 = 2.5\n\n$\\boxed{2.5}$", "I think\n\n\\boxed{3}"],
        "scores": [[0.6, 0.7], [0.9, 0.8], [0.2, 0.1]],
        "agg_scores": [0.7, 0.8, 0.1],
        "pred": "\\boxed{2.5}",
    },
]


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_search_and_learn_rows_become_chains_with_step_scores_and_results(tmp_path, store):
    path = write_jsonl(tmp_path / "best_of_n_completions.jsonl", SAL_ROWS)
    report = import_peer(store, "search-and-learn", path, model="Qwen2.5-1.5B-Instruct")
    [run_id] = report.imported
    summary = run_summary(store, run_id)
    assert summary.strategy == "best_of_n" and summary.n == 3 and summary.model == "Qwen2.5-1.5B-Instruct"
    assert summary.problems_done == 2 and summary.correct == 2 and summary.accuracy == 1.0
    results = run_results(store, run_id)
    assert [r.key for r in results] == ["test/algebra/1.json", "test/algebra/2.json"]
    assert [r.answer for r in results] == ["5", "2.5"]  # weighted pred at the largest N, then `pred`
    assert results[1].gold == "\\frac{5}{2}" and results[0].difficulty == 1 and results[1].difficulty == 2
    nodes = tree_nodes(store, run_id, results[0].problem_id)
    assert nodes[0].text == "What is $2 + 3$?" and nodes[0].parent_seq is None
    # one chain per completion, split on blank lines: 2 + 2 + 3 steps under the root
    assert len(nodes) == 1 + 2 + 2 + 3
    assert [n.parent_seq for n in nodes] == [None, 0, 1, 0, 3, 0, 5, 6]
    assert [n.score for n in nodes[1:]] == [0.9, 0.95, 0.8, 0.1, 0.5, 0.7, 0.6]
    leaves = [nodes[2], nodes[4], nodes[7]]
    assert [leaf.answer for leaf in leaves] == ["5", "6", "5"]
    assert [leaf.correct for leaf in leaves] == [True, False, True]
    assert [leaf.path_score for leaf in leaves] == [0.95, 0.1, 0.6]
    # the chosen node is the best-scored chain carrying the predicted answer; its path is selected
    assert results[0].node_seq == 2
    assert [n.status for n in nodes[:3]] == ["selected"] * 3
    assert nodes[4].status == "terminal"
    # completion_tokens are split over each chain's steps and add up
    assert sum(n.tokens for n in nodes) == 75 == results[0].tokens


def test_importing_the_same_peer_file_twice_adds_nothing(tmp_path, store):
    path = write_jsonl(tmp_path / "out.jsonl", SAL_ROWS)
    first = import_peer(store, "search-and-learn", path)
    second = import_peer(store, "search-and-learn", path)
    assert len(first.imported) == 1 and second.imported == [] and second.skipped == first.imported
    assert len(list_runs(store)) == 1


@pytest.mark.parametrize("row,message", [
    ({"answer": "1", "completions": ["x"]}, "line 1: missing field 'problem'"),
    ({"problem": "q", "completions": "not a list"}, "'completions' must be a list of strings"),
    ({"problem": "q", "completions": ["a", "b"], "scores": [[0.1]]}, "one list of step scores per completion"),
])
def test_a_malformed_search_and_learn_row_is_one_clear_error(tmp_path, store, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(UserError, match=message):
        import_peer(store, "search-and-learn", path)
    assert list_runs(store) == []


# A TreeLog as llm-reasoners' TreeLogEncoder writes it: {"logs": [TreeSnapshot.__dict__()...]}, nodes and
# edges keyed by id, edge data holding the MCTS statistics (Q, reward, action).
def snapshot(node_ids, edges, selected):
    return {
        "nodes": {str(i): {"id": i, "data": ({"question": "Stack the blocks: what is 6 * 7?"} if i == 0 else
                                             {"state": f"state after node {i}"}),
                           "selected_edge": selected.get(i), "convert_images": True} for i in node_ids},
        "edges": {str(e): {"id": e, "source": s, "target": t, "convert_images": True,
                           "data": {"Q": q, "reward": r, "action": a}} for e, (s, t, q, r, a) in edges.items()},
    }


TREELOG = {"logs": [
    snapshot([0, 1, 2], {0: (0, 1, 0.5, 0.6, "Step A: 6 * 7"), 1: (0, 2, 0.2, 0.3, "Step B: guess <b>40</b>")},
             {0: 0}),
    snapshot([0, 1, 2, 3, 4], {0: (0, 1, 0.7, 0.6, "Step A: 6 * 7"), 1: (0, 2, 0.2, 0.3, "Step B: guess <b>40</b>"),
                               2: (1, 3, 0.9, 0.95, "The answer is 42."), 3: (1, 4, -1.5, -2.0, "The answer is 41.")},
             {0: 0, 1: 2}),
]}


def test_llm_reasoners_treelog_becomes_one_tree_with_the_selected_path(tmp_path, store):
    path = tmp_path / "mcts_treelog.json"
    path.write_text(json.dumps(TREELOG))
    [run_id] = import_peer(store, "llm-reasoners", path).imported
    summary = run_summary(store, run_id)
    assert summary.strategy == "mcts" and summary.problems_done == 1
    [result] = run_results(store, run_id)
    assert result.question == "Stack the blocks: what is 6 * 7?" and result.answer == "42"
    nodes = tree_nodes(store, run_id, result.problem_id)
    assert [n.text for n in nodes] == ["Stack the blocks: what is 6 * 7?", "Step A: 6 * 7",
                                       "Step B: guess <b>40</b>", "The answer is 42.", "The answer is 41."]
    assert [n.parent_seq for n in nodes] == [None, 0, 0, 1, 1]
    # nodes of the first snapshot come first: the replay follows the search
    assert [n.iteration for n in nodes] == [0, 0, 0, 1, 1]
    # rewards in [0, 1] become scores; others stay in meta only
    assert [n.score for n in nodes] == [None, 0.6, 0.3, 0.95, None]
    assert nodes[4].meta["edge_data"]["reward"] == -2.0 and nodes[3].meta["edge_data"]["Q"] == 0.9
    assert [n.status for n in nodes] == ["selected", "selected", "terminal", "selected", "terminal"]
    assert result.node_seq == 3


def test_llm_reasoners_edges_may_be_a_list_and_the_question_comes_from_the_caller():
    log = {"logs": [{"nodes": {"0": {"id": 0, "data": {}}, "1": {"id": 1, "data": {"state": "s1"}}},
                     "edges": [{"id": 0, "source": 0, "target": 1, "data": {"reward": 0.4}}]}]}
    doc = from_llm_reasoners(json.dumps(log).encode(), "x.json", question="Why?")
    nodes = doc["runs"][0]["nodes"]
    assert [n["text"] for n in nodes] == ["Why?", "s1"] and nodes[1]["score"] == 0.4


@pytest.mark.parametrize("payload,message", [
    (b"not json", "not valid JSON"),
    (json.dumps({"logs": []}).encode(), "at least one snapshot"),
    (json.dumps({"logs": [{"nodes": {}}]}).encode(), "'nodes' and 'edges'"),
    (json.dumps({"logs": [{"nodes": {"0": {"id": 0}, "1": {"id": 1}}, "edges": []}]}).encode(), "one root node, found 2"),
    (json.dumps({"logs": [{"nodes": {"0": {"id": 0}}, "edges": [{"id": 0, "source": 0, "target": 9}]}]}).encode(),
     "unknown nodes"),
])
def test_a_malformed_treelog_is_one_clear_error(payload, message):
    with pytest.raises(UserError, match=message):
        from_llm_reasoners(payload, "t.json")


def test_an_unknown_peer_format_is_refused(tmp_path, store):
    with pytest.raises(UserError, match="unknown format 'openr'"):
        import_peer(store, "openr", tmp_path / "x.json")


def test_peer_documents_are_valid_bundles():
    doc = from_search_and_learn("\n".join(json.dumps(r) for r in SAL_ROWS).encode(), "o.jsonl")
    from store.bundle import validate_bundle

    validate_bundle(doc)  # raises on any schema problem
    assert doc["runs"][0]["params"]["imported_from"] == "search-and-learn"


def test_the_cli_imports_peer_files_with_from(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = write_jsonl(tmp_path / "sal.jsonl", SAL_ROWS)
    env = {**os.environ, "THINKTRACE_DB": str(tmp_path / "t.db")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "reasoning", *a], cwd=Path(__file__).parents[1],  # noqa: E731
                                    env=env, capture_output=True, text=True, timeout=120)
    proc = run("import", str(path), "--from", "search-and-learn", "--model", "Qwen", "--json")
    assert proc.returncode == 0, proc.stderr
    [run_id] = json.loads(proc.stdout)["imported"]
    shown = json.loads(run("show", run_id, "--json").stdout)
    assert shown["model"] == "Qwen" and shown["accuracy"] == 1.0
    bad = run("import", str(path), "--from", "openr")
    assert bad.returncode == 2 and "unknown --from 'openr'" in bad.stderr


# ---------------------------------------------------------------------------------------------
# Hostile and careless peer files (issue 14): each is one line and exit 2, or a sound import.

def _alarm(seconds: int):
    """Fail instead of hanging when a conversion never ends (on the code before its fix)."""
    import signal

    def stop(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)


def test_a_selected_edge_that_loops_ends_the_path_instead_of_the_import():
    log = {"logs": [snapshot([0, 1, 2], {0: (0, 1, 0.5, 0.6, "Step A"), 1: (1, 2, 0.9, 0.9, "The answer is 42.")},
                             {0: 0, 1: 0, 2: 0})]}  # node 1 selects the edge into itself, node 2 the root's
    _alarm(10)
    try:
        doc = from_llm_reasoners(json.dumps(log).encode(), "loop.json")
    finally:
        import signal

        signal.alarm(0)
    nodes = doc["runs"][0]["nodes"]
    assert [n["status"] for n in nodes] == ["selected", "selected", "terminal"]
    assert doc["runs"][0]["results"][0]["node_seq"] == 1


def test_a_cycle_apart_from_the_root_is_refused():
    log = {"logs": [{"nodes": {str(i): {"id": i, "data": {}, "selected_edge": 1 if i == 0 else None} for i in range(3)},
                     "edges": [{"id": 0, "source": 1, "target": 2}, {"id": 1, "source": 2, "target": 1}]}]}
    with pytest.raises(UserError, match="node 1 is not reachable from the root"):
        from_llm_reasoners(json.dumps(log).encode(), "cycle.json")


def test_node_ids_are_integers_or_strings_and_digit_like_ones_do_not_crash():
    log = {"logs": [{"nodes": [{"id": "²", "data": {"question": "q"}}, {"id": "10", "data": "b"}, {"id": "9", "data": "a"}],
                     "edges": [{"id": 0, "source": "²", "target": "10"}, {"id": 1, "source": "²", "target": "9"}]}]}
    nodes = from_llm_reasoners(json.dumps(log).encode(), "ids.json")["runs"][0]["nodes"]
    assert [n["text"] for n in nodes] == ["q", "a", "b"]  # numeric ids in numeric order
    for odd in (1.5, True, None, [1], {"a": 1}):
        log["logs"][0]["nodes"][0]["id"] = odd
        with pytest.raises(UserError, match="a node id must be an integer or a string"):
            from_llm_reasoners(json.dumps(log).encode(), "ids.json")


SAL_ROW = {"problem": "What is 2 + 3?", "answer": "5", "completions": ["2 + 3 = 5\n\nThe answer is 5."],
           "scores": [[0.9, 0.8]]}


def _sal_line(**changes) -> str:
    return json.dumps({**SAL_ROW, **changes})


@pytest.mark.parametrize("fmt,text,message", [
    ("search-and-learn", _sal_line(completions=5), "field 'completions' must be a list of strings"),
    ("search-and-learn", _sal_line().replace("0.9", "1e400"), "the number 1e400 is beyond the range of a double"),
    ("search-and-learn", _sal_line().replace("0.9", "NaN"), "NaN is not a number"),
    ("search-and-learn", _sal_line().replace("0.9", "Infinity"), "Infinity is not a number"),
    ("search-and-learn", _sal_line(level=2**64), "does not fit in 64 bits"),
    ("search-and-learn", _sal_line().replace('"5"', "9" * 5000, 1), "does not fit in 64 bits"),
    ("search-and-learn", _sal_line(level="Level " + "9" * 5000, answer=[4]), "field 'answer' must be a string or a number"),
    ("search-and-learn", '{"problem": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested deeper than 64 levels"),
    ("search-and-learn", _sal_line(completion_tokens=[True]) + "\n" + _sal_line(unique_id={"a": 1}),
     "line 2: field 'unique_id' must be a string or an integer"),
    ("llm-reasoners", '{"logs": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 64 levels"),
    ("llm-reasoners", json.dumps({"logs": [{"nodes": {"0": {"id": 0, "data": "q"}, "1": {"id": 1}},
                                            "edges": [{"id": 0, "source": 0, "target": 1,
                                                       "data": {"reward": float("inf")}}]}]}).replace("Infinity", "1e999"),
     "the number 1e999 is beyond the range of a double"),
])
def test_a_hostile_peer_file_is_one_line_and_exit_2(tmp_path, fmt, text, message):
    from helpers_cli import run_cli

    path = tmp_path / "peer.json"
    path.write_text(text)
    result = run_cli("import", str(path), "--from", fmt, db=tmp_path / "t.db")
    assert (result.code, len(result.lines)) == (2, 1), result
    assert message in result.lines[0] and "Traceback" not in result.stderr


def test_importing_a_directory_as_a_peer_file_is_one_line_and_exit_2(tmp_path):
    from helpers_cli import run_cli

    result = run_cli("import", str(tmp_path), "--from", "search-and-learn", db=tmp_path / "t.db")
    assert (result.code, result.lines) == (2, [f"error: cannot import {tmp_path}: it is a directory"])


def test_a_jsonl_row_may_hold_a_line_separator_inside_a_string(tmp_path, store):
    path = tmp_path / "sep.jsonl"
    path.write_text(json.dumps({**SAL_ROW, "problem": "What is\u2028 2 + 3?"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")  # the separator raw, as ensure_ascii=False writes it
    [run_id] = import_peer(store, "search-and-learn", path).imported
    assert run_results(store, run_id)[0].question == "What is\u2028 2 + 3?"


def test_a_peer_file_that_is_not_utf8_is_refused(tmp_path, store):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(_sal_line(problem="Qu'est-ce que 2 + 3 ? \u00e9").encode("latin-1").replace(b"\\u00e9", b"\xe9"))
    with pytest.raises(UserError, match="not UTF-8 text"):
        import_peer(store, "search-and-learn", path)
