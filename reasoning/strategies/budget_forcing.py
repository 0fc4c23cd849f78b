"""Budget forcing (s1, Muennighoff et al. 2025): make the model think longer by refusing to let it
stop early. One greedy chain.

On a thinking model (one that writes <think> ... </think>), this is the thinking budget of every chain
strategy (reasoning/thinking_budget.py) on one greedy chain: whenever the thinking ends before
cfg.think_tokens thinking tokens, its end is replaced by "Wait" and it goes on; cfg.max_think_tokens
cuts it. A sweep sets both to the budget: the model thinks about that many tokens (the o1 plot).

On a model that does not think, whenever it stops before cfg.think_tokens generated tokens in all,
"Wait" is appended and it continues from there, at most MAX_EXTENSIONS times. "The model stops" means a
generation ended before its token limit: an EOS token, which in the few-shot format is the model
starting a new question right after "The answer is N.", i.e. its final answer. Each "Wait" is a step
node of its own (0 generated tokens: we wrote it) with meta {"forced": True, "at_tokens": t}, t being
the tokens generated before it; the continuation's steps hang below it.

T = cfg.think_tokens, DEFAULT_MINIMUM when 0. Greedy, as s1 evaluates and as cot is, so the extra
tokens are the only change. The answer is that of the final text (the last stated answer wins); a
verifier, if given, only scores.
"""
from __future__ import annotations

from reasoning.config import SearchConfig
from reasoning.strategies import Strategy
from reasoning.strategies.chains import add_chain, finish, score_leaves
from reasoning.thinking import split_thinking
from reasoning.thinking_budget import budgeted
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier

WAIT = "Wait"
MAX_EXTENSIONS = 4
DEFAULT_MINIMUM = 128  # --think-tokens 0 (the shared default: no minimum) means this here


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    minimum = cfg.think_tokens or DEFAULT_MINIMUM
    prompt, text, used, forced = lm.prompt(problem.question), "", 0, 0
    node = tree.root
    [[completion]] = budgeted(lm, cfg, minimum=minimum).complete([prompt], n=1, max_new_tokens=cfg.max_new_tokens,
                                                                temperature=0.0)
    while True:
        text, used = text + completion.text, used + completion.n_tokens
        node = add_chain(tree, node, completion, cfg.delimiter, {})
        if split_thinking(text).thinking is not None:  # a thinking model: the budget was kept while generating
            forced = sum(1 for _, kind in completion.inserted if kind == "wait")
            break
        stopped_early = completion.finish_reason != "length" and used < minimum
        if not stopped_early or forced == MAX_EXTENSIONS or used >= cfg.max_new_tokens:
            break
        text = text.rstrip() + cfg.delimiter + WAIT
        node = tree.add(node, WAIT, tokens=0, meta={"forced": True, "at_tokens": used})
        forced += 1
        [[completion]] = lm.complete([prompt + text], n=1, max_new_tokens=cfg.max_new_tokens - used, temperature=0.0)
    finish(problem, tree, node, text, completion.finish_reason, cfg)
    score_leaves(problem, verifier, tree, [node], cfg.aggregate)
    tree.select(node)
    votes = {node.answer: 1.0} if node.answer is not None else {}
    return Outcome(node.answer, node.seq, votes, meta={"extensions": forced, "tokens": used})


# Its budget is thinking: a sweep sets the minimum and the maximum to it (n only keys the run).
STRATEGY = Strategy(
    "budget_forcing", "one greedy chain, made to go on ('Wait') until --think-tokens (thinking models: "
    "and cut at --max-think-tokens)", search,
    knobs=("think_tokens", "max_think_tokens", "max_new_tokens"),
    budget=("think_tokens", "max_think_tokens"), order=70, continues=True)
