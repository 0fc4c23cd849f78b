"""What the chain strategies share: sample whole completions, store each as a chain of step
nodes, score them with the verifier, and vote or pick."""
from __future__ import annotations

from reasoning.answers import NONE, STANDARD, TASK, Extracted, extract_answer, is_equiv, majority, vote as answers_vote
from reasoning import fewshot
from reasoning.config import AUTO, SearchConfig
from reasoning.problems import dataset_extractor
from reasoning.tree import Tree, split_steps
from reasoning.types import TERMINAL, Completion, LanguageModel, Node, Outcome, Problem, Verifier
from reasoning.verifiers import aggregate
from reasoning.thinking import TURN_WORDS, Thinking, split_thinking, thoughts
from reasoning.thinking_budget import CUT, EMPTY, FORCED, budgeted
from reasoning.verifiers.confidence import step_signals


def sample_chains(problem: Problem, lm: LanguageModel, tree: Tree, n: int, temperature: float,
                  cfg: SearchConfig) -> list[Node]:
    """One batched call for n samples (a few rounds under a thinking budget: reasoning/thinking_budget.py);
    each becomes a chain under the root. Returns the leaves."""
    # A task's answer ends at the blank line after its output (the model would go on to invent a task).
    stop = fewshot.STOP if fewshot.is_task(problem) else None
    [completions] = budgeted(lm, cfg).complete([lm.prompt(problem.question)], n=n, max_new_tokens=cfg.max_new_tokens,
                                               temperature=temperature, top_p=cfg.top_p, stop=stop)
    leaves = []
    for sample, completion in enumerate(completions):
        leaf = add_chain(tree, tree.root, completion, cfg.delimiter, {"sample": sample})
        finish(problem, tree, leaf, completion.text, completion.finish_reason, cfg)
        leaves.append(leaf)
    return leaves


def add_chain(tree: Tree, parent: Node, completion: Completion, delimiter: str, meta: dict) -> Node:
    """Store a whole completion as a chain of step nodes under `parent` (each generated token
    counted in the step it ends in, with its token-confidence signals in meta when the backend gave
    them: see verifiers/confidence.py); returns the last one. A completion with a thinking trace is
    stored as its thoughts, then its answer (add_thinking_chain)."""
    split = split_thinking(completion.text)
    if split.thinking is not None:
        return add_thinking_chain(tree, parent, completion, split, delimiter, meta)
    node, start = parent, 0
    for step in split_steps(completion.text, delimiter, completion.token_ends, completion.token_logprobs):
        signals = step_signals(completion, start, start + step.tokens)
        start += step.tokens
        node = tree.add(node, step.text, tokens=step.tokens, logprob=step.logprob, meta={**meta, **signals})
    return node


def add_thinking_chain(tree: Tree, parent: Node, completion: Completion, split: Thinking, delimiter: str,
                       meta: dict, turn_words: tuple[str, ...] = TURN_WORDS) -> Node:
    """A thinking trace as step nodes: one per thought (meta phase "think", and "turn" when it opens
    with a turn word), then the answer's steps (phase "answer"); each token counted in the node its
    text ends in. The last node's meta says how many tokens went to thinking and to the answer."""
    text = completion.text
    forced = {at for at, kind in completion.inserted if kind == FORCED}
    cuts = [at for at, kind in completion.inserted if kind == CUT]
    thinking_end = split.thinking_start + len(split.thinking)
    pieces = [(t.text, t.end, {"phase": "think", **({"turn": t.turn} if t.turn else {}),
                               **({"forced": True} if t.start in forced else {}),
                               **({"cut": True} if t.end in cuts else {})})
              for t in thoughts(text, split.thinking_start, thinking_end)]
    if pieces and split.closed:  # the blanks before </think> are thinking, as a thinking budget counts them
        pieces[-1] = (pieces[-1][0], thinking_end, pieces[-1][2])
    if split.closed:
        offset = split.answer_start
        for raw in text[split.answer_start:].split(delimiter):
            offset += len(raw)
            if raw.strip():
                pieces.append((raw.strip(), offset, {"phase": "answer"}))
            offset += len(delimiter)
    if not pieces:  # an empty think block and no answer: one empty step keeps the chain
        pieces = [("", len(text), {"phase": "think"})]
    pieces[-1] = (pieces[-1][0], len(text), pieces[-1][2])  # the tail (</think>, blanks) belongs to the last
    counts = [0] * len(pieces)
    logprobs: list[float | None] = [None] * len(pieces)
    starts = [0] * len(pieces)
    i = 0
    for t, end in enumerate(completion.token_ends or []):
        while i < len(pieces) - 1 and end > pieces[i][1]:
            i += 1
            starts[i] = t
        counts[i] += 1
        if completion.token_logprobs is not None:
            logprobs[i] = (logprobs[i] or 0.0) + completion.token_logprobs[t]
    node, phases = parent, {"think": 0, "answer": 0}
    for (piece, _, extra), count, logprob, start in zip(pieces, counts, logprobs, starts):
        phases[extra["phase"]] += count
        signals = step_signals(completion, start, start + count)
        node = tree.add(node, piece, tokens=count, logprob=logprob, meta={**meta, **extra, **signals})
    budget = {"forced_waits": len(forced)} if forced else {}
    if cuts:
        budget["thinking_cut"] = True
    if any(kind == EMPTY for _, kind in completion.inserted):
        budget["no_think"] = True
    tree.update(node, meta=dict(node.meta, think_tokens=phases["think"], answer_tokens=phases["answer"],
                                thinking_closed=split.closed, **budget))
    return node


def finish(problem: Problem, tree: Tree, node: Node, text: str, finish_reason: str | None,
           cfg: SearchConfig | None = None) -> None:
    """Mark `node` as the end of a path whose whole text is `text`: its answer, read by the run's
    extractor (answer_extractor), and whether it is right (a missing answer counts as wrong when the
    gold is known). A thinking model's answer is read from what follows its thinking; a trace cut
    while thinking has none."""
    split = split_thinking(text)
    answer_text = split.answer if split.thinking is not None else text
    extractor = answer_extractor(problem, cfg)
    if extractor == TASK and fewshot.is_task(problem):  # grid or line: the task says which
        value = fewshot.extract(problem.meta["answer_format"], answer_text)
        found = Extracted(value, TASK if value else NONE)
    else:
        found = extract_answer(answer_text, extractor=extractor)
    correct = None if problem.answer is None or not found.found else is_equiv(found.value, problem.answer)
    if problem.answer is not None and not found.found:
        correct = False
    tree.update(node, status=TERMINAL, finish_reason=finish_reason, answer=found.value, correct=correct,
                meta=dict(node.meta, answer_method=found.method))


def answer_extractor(problem: Problem, cfg: SearchConfig | None) -> str:
    """The extractor a search reads answers with: its config's, where "auto" (never stored: a run
    resolves it when created) means the problem's dataset's own (reasoning.problems.dataset_extractor)."""
    chosen = getattr(cfg, "extractor", AUTO) if cfg is not None else STANDARD
    return dataset_extractor(problem.dataset) if chosen == AUTO else chosen


def score_leaves(problem: Problem, verifier: Verifier | None, tree: Tree, leaves: list[Node],
                 how: str) -> None:
    """Score every step of every chain in one verifier call; store step and path scores. A verifier
    with `score_nodes` (the confidence verifiers) gets the step nodes, whose meta holds token data."""
    if verifier is None or not leaves:
        return
    paths = [tree.path(leaf) for leaf in leaves]
    if hasattr(verifier, "score_nodes"):
        scores = verifier.score_nodes(problem.question, paths, gold=problem.answer)
    else:
        scores = verifier.score(problem.question, [[n.text for n in path] for path in paths], gold=problem.answer)
    for path, step_scores in zip(paths, scores):
        for i, node in enumerate(path):
            tree.update(node, score=step_scores[i], path_score=aggregate(step_scores[: i + 1], how))


def vote(leaves: list[Node], rule: str) -> Outcome:
    """Choose among finished chains. majority: most frequent equivalent answer; weighted: answer with
    the largest summed path score; naive: the single best-scored chain. The chosen node is the
    best-scored (else first) chain that carries the winning answer (reasoning.answers.vote)."""
    answers = [leaf.answer for leaf in leaves]
    scores = [leaf.path_score or 0.0 for leaf in leaves]
    if rule == "naive":
        ranked = sorted(leaves, key=lambda leaf: (-(leaf.path_score or 0.0), leaf.seq))
        best = ranked[0] if ranked else None
        return Outcome(best.answer if best else None, best.seq if best else None, majority(answers, scores)[1])
    result = answers_vote(answers, weights=scores if rule == "weighted" else None,
                          rank=[(score, -leaf.seq) for score, leaf in zip(scores, leaves)])
    if result.winner is None:
        return Outcome(None, leaves[0].seq if leaves else None, result.table)
    best = leaves[result.chosen]
    return Outcome(best.answer, best.seq, result.table)
