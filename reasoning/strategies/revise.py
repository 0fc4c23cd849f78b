"""Sequential revisions (Snell et al. 2024, "Scaling LLM test-time compute"): P parallel chains of
N/P attempts, where every attempt after the first sees the earlier attempts of its chain and is asked
to check them and write a corrected solution.

Parameters: N = cfg.n attempts in all, P = cfg.parallel, cfg.max_new_tokens per attempt,
cfg.temperature, cfg.select (with a verifier), cfg.aggregate.

Round j makes attempt j of every chain in one batched call (round 0 is P samples of the plain
prompt). The revision request is written into the question given to `lm.prompt`, so it works with
whatever prompt format the model uses (few-shot or chat). Each attempt is stored as a chain of step
nodes under the root with meta {"chain": p, "attempt": j}. The answer: with a verifier, every
attempt is scored in one call and chosen by cfg.select (weighted by default); without one, a
majority vote over all attempts.
"""
from __future__ import annotations

from reasoning.config import THINKING_KNOBS, Knob, SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import Strategy
from reasoning.strategies.chains import add_chain, finish, score_leaves, vote
from reasoning.strategies.steps import sample
from reasoning.thinking_budget import budgeted
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Node, Outcome, Problem, Verifier

REVISION_REQUEST = (
    "{question}\n\n"
    "{attempts}"
    "Check the previous attempts for mistakes and solve the problem again, correctly."
)
ATTEMPT = "Previous attempt {number}:\n{text}\n\n"


def check_config(cfg: SearchConfig) -> None:
    cfg.validate()
    if cfg.n % cfg.parallel:
        raise UserError(f"--n ({cfg.n}) must be a multiple of --parallel ({cfg.parallel}): "
                        f"P chains of N/P attempts each")


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    check_config(cfg)
    chains: list[list[Node]] = [[] for _ in range(cfg.parallel)]
    for attempt in range(cfg.n // cfg.parallel):
        prompts = [lm.prompt(revision_question(problem.question, [tree.steps(leaf) for leaf in chain], cfg.delimiter))
                   for chain in chains]
        rows = sample(budgeted(lm, cfg), prompts, [1] * len(prompts), max_new_tokens=cfg.max_new_tokens,
                      temperature=cfg.temperature, top_p=cfg.top_p)
        for p, [completion] in enumerate(rows):
            leaf = add_chain(tree, tree.root, completion, cfg.delimiter, {"chain": p, "attempt": attempt})
            finish(problem, tree, leaf, completion.text, completion.finish_reason, cfg)
            chains[p].append(leaf)
    leaves = sorted((leaf for chain in chains for leaf in chain), key=lambda leaf: leaf.seq)
    score_leaves(problem, verifier, tree, leaves, cfg.aggregate)
    outcome = vote(leaves, cfg.select if verifier is not None else "majority")
    tree.select(tree.nodes[outcome.node])
    outcome.meta = {"chains": cfg.parallel, "attempts": cfg.n // cfg.parallel}
    return outcome


STRATEGY = Strategy(
    "revise", "P chains of N/P attempts, each revising the earlier ones (--parallel P)", search,
    knobs=("n", Knob("parallel", 1, "revise: P chains of N/P attempts.",
                     hint="Revise: parallel chains of N/P attempts each.", low=1), "temperature", "max_new_tokens", *THINKING_KNOBS),
    check=check_config, order=60)


def revision_question(question: str, attempts: list[list[str]], delimiter: str) -> str:
    """The question itself for a first attempt; with earlier attempts, the question, those attempts
    and the request to revise."""
    if not attempts:
        return question
    shown = "".join(ATTEMPT.format(number=i + 1, text=delimiter.join(steps)) for i, steps in enumerate(attempts))
    return REVISION_REQUEST.format(question=question, attempts=shown)
