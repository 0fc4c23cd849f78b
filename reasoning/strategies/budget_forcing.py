"""Budget forcing (s1, Muennighoff et al. 2025): make the model think longer by refusing to let it
stop early. One greedy chain; whenever the model stops before cfg.think_tokens generated tokens in
all, "Wait" is appended and it continues from there.

Parameters: T = cfg.think_tokens (minimum), cfg.max_new_tokens (maximum for the whole chain),
at most MAX_EXTENSIONS forced continuations.

"The model stops" means a generation ended before its token limit: an EOS token, which in the
few-shot format is the model starting a new question right after "The answer is N.", i.e. its final
answer. Each "Wait" is a step node of its own (0 generated tokens: we wrote it) with meta
{"forced": True, "at_tokens": t}, t being the tokens generated before it; the continuation's steps
hang below it. Greedy, as s1 evaluates and as cot is, so the extra tokens are the only change. The
answer is that of the final text (the last stated answer wins); a verifier, if given, only scores.
"""
from __future__ import annotations

from reasoning.config import Knob, SearchConfig
from reasoning.strategies import Strategy
from reasoning.strategies.chains import add_chain, finish, score_leaves
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier

WAIT = "Wait"
MAX_EXTENSIONS = 4


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    prompt, text, used, forced = lm.prompt(problem.question), "", 0, 0
    node = tree.root
    while True:
        [[completion]] = lm.complete([prompt + text], n=1, max_new_tokens=cfg.max_new_tokens - used,
                                     temperature=0.0)
        text, used = text + completion.text, used + completion.n_tokens
        node = add_chain(tree, node, completion, cfg.delimiter, {})
        stopped_early = completion.finish_reason != "length" and used < cfg.think_tokens
        if not stopped_early or forced == MAX_EXTENSIONS or used >= cfg.max_new_tokens:
            break
        text = text.rstrip() + cfg.delimiter + WAIT
        node = tree.add(node, WAIT, tokens=0, meta={"forced": True, "at_tokens": used})
        forced += 1
    finish(problem, tree, node, text, completion.finish_reason)
    score_leaves(problem, verifier, tree, [node], cfg.aggregate)
    tree.select(node)
    votes = {node.answer: 1.0} if node.answer is not None else {}
    return Outcome(node.answer, node.seq, votes, meta={"extensions": forced, "tokens": used})


# A sweep runs it once per budget, but n is not what it spends: runs are named without it.
STRATEGY = Strategy(
    "budget_forcing", "one greedy chain, made to go on ('Wait') until --think-tokens", search,
    knobs=(Knob("think_tokens", 128, "budget_forcing: append 'Wait' while fewer tokens were generated.",
                hint="Budget forcing: minimum generated tokens before the model may stop.", low=0),
           "max_new_tokens"),
    budget=(), order=70, continues=True)
