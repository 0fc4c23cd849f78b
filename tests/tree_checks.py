"""What every stored search tree must satisfy, whatever the strategy (shared by the scripted and
the real-model tests of tree search)."""
from __future__ import annotations

STATUSES = {"kept", "pruned", "terminal", "selected"}


def assert_valid_tree(nodes, result) -> None:
    """`nodes`: store rows of one problem in seq order; `result`: its Result (or ProblemResult)."""
    by_seq = {n.seq: n for n in nodes}
    assert [n.seq for n in nodes] == list(range(len(nodes)))
    root = nodes[0]
    assert root.parent_seq is None and root.depth == 0 and root.status == "selected"
    for node in nodes[1:]:
        parent = by_seq[node.parent_seq]  # a parent link to a stored node
        assert parent.seq < node.seq and node.depth == parent.depth + 1
        assert node.status in STATUSES
        if node.status == "pruned":
            assert node.iteration is not None
        if node.status == "terminal":  # finished: its answer was extracted (maybe None: no answer)
            assert "answer_method" in node.meta
    # exactly one selected path: from the root down to the chosen node, which ended its path
    selected = [n for n in nodes if n.status == "selected"]
    chosen = by_seq[result.node_seq]
    path, node = [], chosen
    while node is not None:
        path.append(node.seq)
        node = by_seq.get(node.parent_seq)
    assert sorted(path) == [n.seq for n in selected]
    assert chosen.answer == result.answer and chosen.meta.get("answer_method") is not None
    # every generated token is on a node (lookahead rollouts are not nodes: their tokens are in meta)
    lookahead = sum(n.meta.get("lookahead_tokens", 0) for n in nodes)
    assert sum(n.tokens for n in nodes) + lookahead == result.tokens


def assert_chain_tree(nodes, result, n: int, scored: bool) -> None:
    """A chain strategy's tree (cot, self_consistency, best_of_n): a valid tree with one chain per sample."""
    assert_valid_tree(nodes, result)
    parents = {node.parent_seq for node in nodes}
    leaves = [node for node in nodes if node.seq not in parents]
    assert len(leaves) == n
    assert all(leaf.finish_reason in ("eos", "length", "stop") for leaf in leaves)
    assert result.tokens > 0 and all(node.logprob is None or node.logprob <= 0 for node in nodes)
    chosen = next(node for node in nodes if node.seq == result.node_seq)
    assert result.correct == bool(chosen.correct)
    if scored:
        assert all(node.score is not None and 0 <= node.score <= 1 for node in nodes[1:])
        assert all(node.path_score is not None for node in nodes[1:])
