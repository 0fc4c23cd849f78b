"""Monte Carlo tree search over steps, with the verifier as the value function (no random rollouts).

Parameters: B = cfg.expansions (the budget), k = cfg.width, c = cfg.c_puct, cfg.max_steps,
cfg.max_step_tokens, cfg.temperature, cfg.aggregate.

One expansion is select -> expand -> score -> back up:
- select: from the root, go to the child with the highest UCT score (UCB1, Kocsis & Szepesvari 2006)
      Q(child) + c * sqrt(ln N(parent) / N(child))
  until a node without children; ties go to the earlier node. Children whose subtrees are exhausted
  (a terminal node, or one whose children are all exhausted) are skipped; an exhausted root ends
  the search before the budget is spent.
- expand: k child steps of that leaf in one batched call (terminal nodes are never expanded).
- score: one verifier call; a new node's value is its path score, and that evaluation is its visit.
- back up: the leaf and each of its ancestors add the k visits and k values, so a node's
  meta {"visits": N, "value": Q} is the count and mean of the values in its subtree (the root's
  subtree excludes the root, which has no score).
Answer: from the root follow the most visited child (ties: higher value, then earlier node) to a
node without children. If that node ended its path it is the answer; else the best-valued terminal
node; with no terminal node at all, the followed path is completed greedily in one call (to
cfg.max_new_tokens, no stop; it may run past max_steps), stored as steps with meta["completion"] = True,
and its end is the answer.
Nothing is pruned: every node stays `kept` or `terminal` until the chosen path is `selected`.
"""
from __future__ import annotations

import math

from reasoning.config import Knob, SearchConfig
from reasoning.strategies import NEEDS, Strategy
from reasoning.strategies.chains import add_chain, finish
from reasoning.strategies.steps import expand, path_prompt, score
from reasoning.tree import Tree
from reasoning.types import TERMINAL, LanguageModel, Node, Outcome, Problem, Verifier

Children = dict[int, list[Node]]  # seq of an expanded node -> its children


def check_config(cfg: SearchConfig) -> None:
    cfg.validate()  # expansions and width at least 1


def search(problem: Problem, lm: LanguageModel, verifier: Verifier, cfg: SearchConfig, tree: Tree) -> Outcome:
    check_config(cfg)
    children: Children = {}
    set_stats(tree, tree.root, 0, 0.0)
    used = 0
    while used < cfg.expansions and not exhausted(tree.root, children):
        leaf = select_leaf(tree, children, cfg.c_puct)
        new = expand(problem, lm, tree, cfg, [leaf], [cfg.width], iteration=used)
        score(problem, verifier, tree, cfg, new)
        children[leaf.seq] = new
        back_up(tree, leaf, new)
        used += 1
    node, how = choose(tree, children)
    if node.status != TERMINAL:
        node, how = complete_greedily(problem, lm, tree, cfg, node), "greedy_completion"
    tree.select(node)
    votes = {node.answer: 1.0} if node.answer is not None else {}
    return Outcome(node.answer, node.seq, votes, meta={"expansions": used, "chosen_by": how})


STRATEGY = Strategy(
    "mcts", "UCT over steps, verifier as value (--expansions, --width, --c-puct)", search,
    knobs=(Knob("expansions", 16, "mcts: budget B, leaf expansions.", hint="MCTS budget: number of leaf expansions.",
                low=1),
           Knob("width", 3, "mcts: k child steps per expansion.", hint="MCTS: child steps sampled per expansion.",
                low=1),
           Knob("c_puct", 1.0, "mcts: exploration constant of UCT.",
                hint="MCTS exploration constant (higher explores more).", low=0, step=0.1),
           "max_steps", "max_step_tokens", "temperature", "aggregate"),
    budget=("n", "expansions"), verifier=NEEDS, order=50, continues=True)


def visits(node: Node) -> int:
    return node.meta["visits"]


def value(node: Node) -> float:
    return node.meta["value"]


def set_stats(tree: Tree, node: Node, n: int, q: float) -> None:
    tree.update(node, meta=dict(node.meta, visits=n, value=q))


def exhausted(node: Node, children: Children) -> bool:
    if node.status == TERMINAL:
        return True
    return node.seq in children and all(exhausted(c, children) for c in children[node.seq])


def select_leaf(tree: Tree, children: Children, c: float) -> Node:
    node = tree.root
    while node.seq in children:
        parent_visits = visits(node)
        open_children = [ch for ch in children[node.seq] if not exhausted(ch, children)]
        node = max(open_children, key=lambda ch: (uct(ch, parent_visits, c), -ch.seq))
    return node


def uct(node: Node, parent_visits: int, c: float) -> float:
    return value(node) + c * math.sqrt(math.log(parent_visits) / visits(node))


def back_up(tree: Tree, leaf: Node, new: list[Node]) -> None:
    values = [child.path_score or 0.0 for child in new]
    for child, q in zip(new, values):
        set_stats(tree, child, 1, q)
    for node in [*reversed(tree.path(leaf)), tree.root]:  # the leaf up to the root
        n = visits(node) + len(values)
        set_stats(tree, node, n, (value(node) * visits(node) + sum(values)) / n)


def choose(tree: Tree, children: Children) -> tuple[Node, str]:
    node = tree.root
    while node.seq in children:
        node = max(children[node.seq], key=lambda ch: (visits(ch), value(ch), -ch.seq))
    if node.status == TERMINAL:
        return node, "most_visited"
    terminals = [n for n in tree.nodes if n.status == TERMINAL]
    if terminals:
        return max(terminals, key=lambda n: (value(n), -n.seq)), "best_value"
    return node, "none"


def complete_greedily(problem: Problem, lm: LanguageModel, tree: Tree, cfg: SearchConfig, node: Node) -> Node:
    steps = tree.steps(node)
    [[completion]] = lm.complete([path_prompt(lm, problem.question, steps, cfg.delimiter)], n=1,
                                 max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    leaf = add_chain(tree, node, completion, cfg.delimiter, {"completion": True})
    finish(problem, tree, leaf, cfg.delimiter.join(tree.steps(leaf)), completion.finish_reason, cfg)
    return leaf
