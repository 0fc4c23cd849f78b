"""What the step-level strategies share: grow partial paths by one step each in one batched call,
score the new steps in one verifier call, and roll candidates out a few greedy steps (lookahead).

A step is what the model writes up to the delimiter (search-and-learn's "\\n\\n"); the prompt for
the next step is the question's prompt followed by the steps so far, each ending with the delimiter.
A new step ends its path (`terminal`, with an answer) when it holds a final answer, when the model
ended its text ("eos") or ran out of its step budget ("length"), when it is empty (the model only
repeated the delimiter: the next call would see the same prompt), or at depth `cfg.max_steps`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from reasoning.answers import STANDARD, extract_answer
from reasoning.config import SearchConfig
from reasoning.strategies.chains import add_chain, answer_extractor, finish
from reasoning.tree import Tree
from reasoning.types import TERMINAL, Completion, LanguageModel, Node, Problem, Verifier
from reasoning.verifiers import aggregate
from reasoning.verifiers.confidence import step_signals


@dataclass(frozen=True)
class Rollout:
    """Greedy steps written beyond a candidate for scoring only (never stored as nodes)."""

    steps: tuple[str, ...] = ()
    tokens: int = 0


def path_prompt(lm: LanguageModel, question: str, steps: list[str], delimiter: str) -> str:
    return lm.prompt(question) + "".join(step + delimiter for step in steps)


def sample(lm: LanguageModel, prompts: list[str], counts: list[int], **settings) -> list[list[Completion]]:
    """counts[i] completions of prompts[i], in one batched call. Repeated prompts are merged into one
    prompt with n = their summed count; if the merged counts differ, every sample is its own row (n=1)."""
    unique = list(dict.fromkeys(prompts))
    totals = dict.fromkeys(unique, 0)
    for prompt, count in zip(prompts, counts):
        totals[prompt] += count
    if len(set(totals.values())) == 1:
        rows = lm.complete(unique, n=totals[unique[0]], **settings)
        pools = {prompt: iter(row) for prompt, row in zip(unique, rows)}
    else:
        flat = iter(lm.complete([p for p in unique for _ in range(totals[p])], n=1, **settings))
        pools = {prompt: iter([next(flat)[0] for _ in range(totals[prompt])]) for prompt in unique}
    return [[next(pools[prompt]) for _ in range(count)] for prompt, count in zip(prompts, counts)]


def expand(problem: Problem, lm: LanguageModel, tree: Tree, cfg: SearchConfig, leaves: list[Node],
           counts: list[int], iteration: int, meta: list[dict] | None = None) -> list[Node]:
    """counts[i] next steps of leaves[i] (one batched call at cfg.temperature), stored as children
    created at `iteration`; returned leaf by leaf. With cfg.last_step_to_eos, the step that reaches
    cfg.max_steps is the rest of the text instead (search-and-learn's last iteration: add_final)."""
    prompts = [path_prompt(lm, problem.question, tree.steps(leaf), cfg.delimiter) for leaf in leaves]
    final = cfg.last_step_to_eos and all(leaf.depth + 1 >= cfg.max_steps for leaf in leaves)
    limits = dict(stop=None, max_new_tokens=cfg.max_new_tokens) if final else \
        dict(stop=[cfg.delimiter], max_new_tokens=cfg.max_step_tokens)
    rows = sample(lm, prompts, counts, temperature=cfg.temperature, top_p=cfg.top_p, **limits)
    meta = meta or [{} for _ in leaves]
    add = add_final if final else add_step
    return [add(problem, tree, cfg, leaf, completion, iteration, extra)
            for leaf, row, extra in zip(leaves, rows, meta) for completion in row]


def add_final(problem: Problem, tree: Tree, cfg: SearchConfig, parent: Node, completion: Completion,
              iteration: int, meta: dict) -> Node:
    """A last step written to the end of the text: stored as the steps it holds (a chain under
    `parent`, meta["to_eos"]), all created at `iteration`; its last node ends the path and is returned."""
    if not step_text(completion.text, cfg.delimiter):
        return add_step(problem, tree, cfg, parent, completion, iteration, meta)  # nothing written: ends the path
    first = len(tree.nodes)
    leaf = add_chain(tree, parent, completion, cfg.delimiter, {**meta, "to_eos": True})
    for node in tree.nodes[first:]:
        tree.update(node, iteration=iteration)
    tree.update(leaf, finish_reason=completion.finish_reason)
    finish(problem, tree, leaf, cfg.delimiter.join(tree.steps(leaf)), completion.finish_reason, cfg)
    return leaf


def add_step(problem: Problem, tree: Tree, cfg: SearchConfig, parent: Node, completion: Completion,
             iteration: int, meta: dict) -> Node:
    text = step_text(completion.text, cfg.delimiter)
    node = tree.add(parent, text, tokens=completion.n_tokens, logprob=completion.logprob,
                    finish_reason=completion.finish_reason, iteration=iteration,
                    meta={**meta, **step_signals(completion, 0, completion.n_tokens)})
    if ends_path(text, completion.finish_reason, node.depth, cfg, answer_extractor(problem, cfg)):
        finish(problem, tree, node, cfg.delimiter.join(tree.steps(node)), completion.finish_reason, cfg)
    return node


def step_text(text: str, delimiter: str) -> str:
    """The stored text of a step: without the stop delimiter it ended on, and without outer blanks."""
    return (text[: -len(delimiter)] if text.endswith(delimiter) else text).strip()


def ends_path(text: str, finish_reason: str, depth: int, cfg: SearchConfig, extractor: str = STANDARD) -> bool:
    return (finish_reason in ("eos", "length") or depth >= cfg.max_steps or not text
            or extract_answer(text, allow_fallback=False, extractor=extractor).found)


def roll_out(problem: Problem, lm: LanguageModel, tree: Tree, cfg: SearchConfig,
             nodes: list[Node]) -> list[Rollout]:
    """cfg.lookahead greedy steps beyond each unfinished node (search-and-learn's lookahead), one
    batched call per step over the rollouts still going; a rollout stops early where a path would end."""
    rollouts = [Rollout() for _ in nodes]
    going = [i for i, node in enumerate(nodes) if node.status != TERMINAL]
    for _ in range(cfg.lookahead):
        if not going:
            break
        prompts = [path_prompt(lm, problem.question, tree.steps(nodes[i]) + list(rollouts[i].steps), cfg.delimiter)
                   for i in going]
        rows = lm.complete(prompts, n=1, stop=[cfg.delimiter], max_new_tokens=cfg.max_step_tokens, temperature=0.0)
        still = []
        for i, [completion] in zip(going, rows):
            text = step_text(completion.text, cfg.delimiter)
            rollouts[i] = Rollout(rollouts[i].steps + (text,), rollouts[i].tokens + completion.n_tokens)
            if not ends_path(text, completion.finish_reason, nodes[i].depth + len(rollouts[i].steps), cfg,
                             answer_extractor(problem, cfg)):
                still.append(i)
        going = still
    return rollouts


def score(problem: Problem, verifier: Verifier, tree: Tree, cfg: SearchConfig, nodes: list[Node],
          rollouts: list[Rollout] | None = None) -> None:
    """Score the new steps in one verifier call over their whole paths (extended by their rollouts).
    node.score is the step's own score, node.path_score aggregates its path (cfg.aggregate); with a
    rollout, meta["lookahead_score"] aggregates the rolled-out path and meta["lookahead_tokens"]
    counts the rollout's generated tokens (they are in the run's budget but on no node). A NaN score
    is stored as None with meta["nan_score"] = True and counts as 0 in every aggregate."""
    if not nodes:
        return
    rollouts = rollouts or [Rollout() for _ in nodes]
    paths = [tree.steps(node) for node in nodes]
    if hasattr(verifier, "score_nodes"):
        # Confidence verifiers read the token data stored on step nodes; rolled-out steps have no
        # nodes, so for them a lookahead spends tokens but does not change the score.
        scores = verifier.score_nodes(problem.question, [tree.path(node) for node in nodes], gold=problem.answer)
    else:
        scores = verifier.score(problem.question, [path + list(r.steps) for path, r in zip(paths, rollouts)],
                                gold=problem.answer)
    for node, path, rollout, step_scores in zip(nodes, paths, rollouts, scores):
        own = step_scores[len(path) - 1]
        broken = own is None or math.isnan(own)
        meta = dict(node.meta, nan_score=True) if broken else dict(node.meta)
        if rollout.steps:
            meta.update(lookahead_score=aggregate(step_scores, cfg.aggregate), lookahead_tokens=rollout.tokens)
        tree.update(node, score=None if broken else float(own),
                    path_score=aggregate(step_scores[: len(path)], cfg.aggregate), meta=meta)


def rank(node: Node) -> float:
    """What selection compares: the lookahead score when there was a rollout, else the path score."""
    return node.meta.get("lookahead_score", node.path_score or 0.0)


def best_first(nodes: list[Node]) -> list[Node]:
    """Highest rank first; ties go to the earlier node, so selection is deterministic."""
    return sorted(nodes, key=lambda node: (-rank(node), node.seq))
