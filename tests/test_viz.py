"""The figures in viz/: what a reader sees must match the stored tree, node for node."""
from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from reasoning.tree import Tree
from reasoning.types import PRUNED, TERMINAL
from store import models as m
from viz.tree import CATEGORIES, UNSCORED, answer_table, is_chain, layout_xy, path_of, tree_figure

SYMBOL = {key: symbol for key, _, symbol, *_ in CATEGORIES}


def fan(n_chains=4, steps=3, gold="2") -> list:
    """A self-consistency-shaped tree built through the real Tree: chain i answers str(i % 3);
    chain 2 is the chosen one."""
    tree = Tree("What is 1 + 1?")
    for c in range(n_chains):
        node = tree.root
        for d in range(steps):
            node = tree.add(node, f"chain {c} step {d}", tokens=5, logprob=-1.0, score=(c + d) / 10,
                            path_score=c / 10)
        answer = str(c % 3)
        tree.update(node, status=TERMINAL, answer=answer, correct=answer == gold)
    tree.select(tree.nodes[3 * steps])  # leaf of chain 2
    return tree.nodes


def random_tree(n: int, seed: int = 0) -> list[m.Node]:
    """A bushy search tree as store rows, statuses and scores mixed like a beam search leaves them."""
    rng = random.Random(seed)
    rows = [m.Node(run_id="r", problem_id=1, seq=0, parent_seq=None, depth=0, text="question", status="kept")]
    for seq in range(1, n):
        parent = rows[rng.randrange(max(0, seq - 30), seq)]
        status = rng.choice(["kept", "pruned", "terminal"])
        rows.append(m.Node(run_id="r", problem_id=1, seq=seq, parent_seq=parent.seq, depth=parent.depth + 1,
                           text=f"step {seq}", tokens=7, logprob=-2.0, score=rng.random(), path_score=rng.random(),
                           status=status, answer="4" if status == "terminal" else None,
                           correct=rng.choice([True, False]) if status == "terminal" else None))
    return rows


def point_traces(fig):
    return [t for t in fig.data if t.mode and "markers" in t.mode and t.customdata is not None]


def plotted_seqs(fig) -> list[int]:
    return sorted(int(s) for t in point_traces(fig) for s in t.customdata if t.name != "clicked")


def test_every_node_is_one_point_carrying_its_seq():
    nodes = fan()
    fig = tree_figure(nodes)
    assert plotted_seqs(fig) == [n.seq for n in nodes]
    edges = [t for t in fig.data if t.name == "edges"][0]
    assert np.isnan(np.asarray(edges.x, float)).sum() == len(nodes) - 1  # one segment per parent link


def test_points_are_coloured_by_score_on_one_shared_scale():
    nodes = fan()
    fig = tree_figure(nodes, color_by="score")
    by_seq = {n.seq: n for n in nodes}
    for trace in point_traces(fig):
        colours = trace.marker.color
        if isinstance(colours, str):  # the unscored root
            assert colours == UNSCORED and all(by_seq[int(s)].score is None for s in trace.customdata)
            continue
        assert trace.marker.coloraxis == "coloraxis"
        assert np.allclose(colours, [by_seq[int(s)].score for s in trace.customdata])
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    assert fig.layout.coloraxis.showscale is True
    path = tree_figure(nodes, color_by="path_score")
    leaf = [t for t in point_traces(path) if t.name == "answer wrong"][0]
    assert np.allclose(leaf.marker.color, [by_seq[int(s)].path_score for s in leaf.customdata])


def test_unscored_trees_have_no_colour_bar():
    nodes = fan()
    for n in nodes:
        n.score = n.path_score = None
    fig = tree_figure(nodes)
    assert fig.layout.coloraxis.showscale is False
    assert all(t.marker.color == UNSCORED for t in point_traces(fig))


def test_marker_symbol_says_the_status():
    nodes = fan()  # answers 0,1,2,0 with gold 2; chain 2 (answer 2) chosen
    nodes[1].status = PRUNED
    fig = tree_figure(nodes)
    seen: dict[str, tuple] = {}  # scored and unscored points of one status share a legend name
    for t in point_traces(fig):
        symbol, seqs = seen.get(t.name, (t.marker.symbol, []))
        assert symbol == t.marker.symbol
        seen[t.name] = (symbol, sorted(seqs + [int(s) for s in t.customdata]))
    assert seen["pruned"] == (SYMBOL["pruned"], [1])
    assert seen["chosen path"] == (SYMBOL["selected"], [0, 7, 8, 9])
    assert seen["answer wrong"] == (SYMBOL["wrong"], [3, 6, 12])
    assert "answer right" not in seen  # the only right chain is the chosen one
    assert seen["kept"][0] == SYMBOL["kept"]
    nodes[6].correct = True
    assert sorted(int(s) for t in point_traces(tree_figure(nodes)) if t.name == "answer right"
                  for s in t.customdata) == [6]


def test_replay_shows_only_nodes_created_so_far():
    nodes = random_tree(200)
    fig = tree_figure(nodes, upto_seq=49)
    assert plotted_seqs(fig) == list(range(50))
    full_x, _ = layout_xy(nodes)
    xs = {int(s): x for t in point_traces(fig) for s, x in zip(t.customdata, t.x)}
    assert all(xs[s] == full_x[s] for s in xs)  # nodes keep their place while the tree grows
    edges = [t for t in fig.data if t.name == "edges"][0]
    assert np.isnan(np.asarray(edges.x, float)).sum() == 49


def test_step_text_is_escaped_in_hover_and_labels():
    tree = Tree("Is <b>this</b> bold?")
    leaf = tree.add(tree.root, "<script>alert('x')</script> so 2", score=0.5)
    tree.update(leaf, status=TERMINAL, answer="<img src=x>", correct=False)
    fig = tree_figure(tree.nodes)
    hovers = " ".join(h for t in point_traces(fig) for h in t.hovertext)
    labels = " ".join(x for t in point_traces(fig) for x in (t.text or ()))
    assert "<script>" not in hovers and "&lt;script&gt;" in hovers
    assert "<b>this</b>" not in hovers and "&lt;b&gt;this&lt;/b&gt;" in hovers
    assert "<img" not in hovers + labels and "&lt;img src=x&gt;" in labels


def test_clicked_node_is_ringed_and_its_path_highlighted():
    nodes = fan()
    fig = tree_figure(nodes, selected_seq=5)
    ring = [t for t in fig.data if t.name == "clicked"][0]
    x, y = layout_xy(nodes)
    assert (ring.x[0], ring.y[0]) == (x[5], y[5])
    path = [t for t in fig.data if t.name == "clicked path"][0]
    assert np.isnan(np.asarray(path.x, float)).sum() == 2  # root -> 4 -> 5: two links


def test_path_of_walks_from_the_root():
    nodes = fan()
    assert [n.seq for n in path_of(nodes, 6)] == [0, 4, 5, 6]
    assert [n.seq for n in path_of(random_tree(50), 0)] == [0]
    assert path_of(nodes, 999) == []


def test_chains_are_a_fan_and_their_answers_a_vote_table():
    nodes = fan(n_chains=4)
    assert is_chain(nodes) and not is_chain(random_tree(100))
    x, y = layout_xy(nodes)
    leaves = [n.seq for n in nodes if n.answer is not None]
    assert sorted(x[leaves]) == [0, 1, 2, 3] and x[0] == 1.5  # one column per chain, root centred
    table = answer_table(nodes)
    assert [(r["answer"], r["votes"], r["chosen"], r["correct"]) for r in table] == [
        ("0", 2, False, False), ("2", 1, True, True), ("1", 1, False, False)]
    assert table[0]["score_sum"] == pytest.approx(0.0 + 0.3)


def test_layout_at_500_nodes_is_layered_and_never_overlaps():
    nodes = random_tree(500)
    x, y = layout_xy(nodes)
    assert np.array_equal(y, [n.depth for n in nodes])
    assert len(set(zip(x.tolist(), y.tolist()))) == len(nodes)
    children: dict[int, list[int]] = {}
    for n in nodes:
        if n.parent_seq is not None:
            children.setdefault(n.parent_seq, []).append(n.seq)
    for parent, kids in children.items():
        assert min(x[kids]) <= x[parent] <= max(x[kids])
    # subtrees own disjoint x ranges: siblings' subtrees never interleave
    def span(seq):
        xs, stack = [], [seq]
        while stack:
            s = stack.pop()
            xs.append(x[s])
            stack.extend(children.get(s, []))
        return min(xs), max(xs)
    for kids in children.values():
        spans = sorted(span(k) for k in kids)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_a_thousand_node_tree_builds_in_well_under_a_second():
    nodes = random_tree(1000)
    started = time.perf_counter()
    tree_figure(nodes, selected_seq=999, upto_seq=800).to_json()
    assert time.perf_counter() - started < 1.0


def test_an_empty_tree_says_so():
    fig = tree_figure([])
    assert fig.layout.annotations[0].text == "No nodes yet" and not point_traces(fig)


def test_tree_can_be_coloured_by_stored_token_signals():
    """Entropy and confidence come from node.meta (top-k logprobs kept at generation), mapped to 0..1;
    nodes without token data stay grey (NaN)."""
    from types import SimpleNamespace

    from viz.tree import _colour_values

    def node(seq, parent, meta):
        return SimpleNamespace(seq=seq, parent_seq=parent, meta=meta, logprob=None, tokens=0)

    flat = {"tok_lp": -3.0, "tok_entropy": math.log(4), "tok_conf": [math.log(4)], "tok_k": 4}
    sharp = {"tok_lp": -0.01, "tok_entropy": 0.0, "tok_conf": [50.0], "tok_k": 4}
    nodes = [node(0, None, {}), node(1, 0, flat), node(2, 0, sharp)]
    entropy = _colour_values(nodes, "entropy")
    assert math.isnan(entropy[0]) and entropy[1] == pytest.approx(0.0) and entropy[2] == pytest.approx(1.0)
    confidence = _colour_values(nodes, "confidence")
    assert confidence[1] < confidence[2] <= 1.0


def test_walks_up_a_tree_end_even_when_stored_parents_loop():
    """A database written before imports refused cycles may hold them: the Verifier page's score paths
    and the Tree page's clicked path must still end (issue 14 #2)."""
    from types import SimpleNamespace

    from viz.scores import step_score_paths
    from viz.tree import layout_xy, path_of

    steps = [("r", 1, 0, None, None), ("r", 1, 1, 2, 0.1), ("r", 1, 2, 1, 0.2), ("r", 1, 3, 3, 0.3)]
    paths = step_score_paths(steps, [("r", 1, 1, True), ("r", 1, 3, False), ("r", 1, 9, None)])
    assert paths == [([0.2, 0.1], True), ([0.3], False), ([], None)]
    nodes = [SimpleNamespace(seq=s, parent_seq=p, depth=d) for _, _, s, p, _ in steps for d in [1]]
    assert [n.seq for n in path_of(nodes, 1)] == [2, 1]
    assert len(layout_xy(nodes)[0]) == 4


def test_a_thinking_traces_turns_are_ringed_and_named_in_the_hover():
    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.types import Problem

    trace = "<think>\n2 + 3 = 6.\n\nWait, 2 + 3 = 5.\n\nBut check: 5 - 3 = 2.\n</think>\n\nThe answer is 5."
    tree = Tree("What is 2 + 3?")
    get_strategy("cot")(Problem("p", "What is 2 + 3?", "5"), ScriptedLM([trace]), None, SearchConfig(), tree)
    fig = tree_figure(tree.nodes)
    [turns] = [t for t in fig.data if t.name == "turn in thinking"]
    assert len(turns.x) == 2  # "Wait" and "But", not the first thought nor the answer
    hovers = [h for t in point_traces(fig) for h in t.hovertext]
    assert any("thought 2" in h and "turn: <b>Wait</b>" in h for h in hovers)
    assert any("answer step 4" in h for h in hovers)
    assert plotted_seqs(fig) == [n.seq for n in tree.nodes]  # the ring is not a point of its own
