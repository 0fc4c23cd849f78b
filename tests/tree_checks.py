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
