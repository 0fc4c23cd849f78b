"""Test-time training (Akyürek et al. 2024, "The Surprising Effectiveness of Test-Time Training for
Abstract Reasoning"): learn from the task's own demonstrations before answering it.

Per task: build leave-one-out tasks from its demonstrations (each demonstration in turn is the test
pair, the others its context), under invertible augmentations (grids: rotations, flips,
transposition, colour permutations; reasoning/grids.py), fine-tune a copy of the model's weights on
them (a LoRA adapter through peft, or every weight of a tiny lab model) for `ttt_steps` steps, then
predict the test output under `n` augmentations, map each prediction back, and vote. ARC's two
attempts are the two most voted answers (Outcome.meta["attempts"]). The base model is never changed:
the backend trains, predicts and restores in one call (reasoning.finetune.adapted).

The tree: the root's meta holds the training (set size, loss per step, tokens, seconds); one node
per augmented prediction (its augmentation, what the model wrote, the answer mapped back), the vote in
the outcome. `ttt_steps 0` is the in-context baseline (no training), and n 1 predicts once, on the
task as given: a sweep over n draws accuracy against augmented predictions.
"""
from __future__ import annotations

from collections import Counter

from reasoning import fewshot
from reasoning.config import Knob, SearchConfig
from reasoning.errors import UserError
from reasoning.finetune import METHODS, TrainText
from reasoning.grids import ANSWER_FORMAT as GRID, Augmentation, augmentations, format_grid, grid_of
from reasoning.strategies import IGNORES, SAMPLES, Strategy
from reasoning.tree import Tree
from reasoning.types import TERMINAL, LanguageModel, Outcome, Problem, Verifier

KNOBS = (
    Knob("ttt_steps", 24, "ttt: training steps on the task's leave-one-out set (0: in-context only).",
         hint="Optimizer steps of test-time training (0: none, the in-context baseline).", low=0),
    Knob("ttt_lr", 1e-4, "ttt: learning rate (cosine to a tenth).", hint="Learning rate of test-time training.",
         low=0, open_low=True, step=0.0001),
    Knob("ttt_method", "full", "ttt: full (every weight: the lab models) | lora (a LoRA adapter through peft).",
         hint="Train every weight (tiny models) or a LoRA adapter (any Hugging Face model).", choices=METHODS),
    Knob("ttt_rank", 8, "ttt: LoRA rank (--ttt-method lora).", hint="Rank of the LoRA adapter.", low=1),
    Knob("ttt_batch", 8, "ttt: tasks per training step.", hint="Leave-one-out tasks per training step.", low=1),
    Knob("ttt_augment", 8, "ttt: augmentations of the training set (1: the leave-one-out tasks as given).",
         hint="How many augmented copies of each leave-one-out task are trained on.", low=1),
)


def _encode(value, format_: str):
    return format_grid(value) if format_ == GRID else value


def training_texts(lm: LanguageModel, demos: list, augs: list[Augmentation], grid: bool) -> list[TrainText]:
    """The leave-one-out tasks under each augmentation, as the model reads a prompt (its `prompt`
    style), the loss on every output (the demonstrations' and the held-out one's)."""
    texts = []
    for aug in augs:
        mapped = [(aug.forward(x), aug.forward(y)) for x, y in demos] if grid else demos
        for context, (x, y) in fewshot.leave_one_out(mapped):
            task, spans = fewshot.render(context, x, y)
            prompt_only = fewshot.render(context, x)[0]
            prompt = lm.prompt(prompt_only)
            at = prompt.find(prompt_only.rstrip("\n"))  # chat templates get the task stripped
            if at < 0:  # a template that changes the text: train on the held-out output only
                at, spans = 0, ()
            text = prompt + task[len(prompt_only):]
            tail = (len(prompt), len(text))
            spans = tuple((a + at, b + at) for a, b in spans if b <= len(prompt_only)) + (tail,)
            texts.append(TrainText(text, spans))
    return texts


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    if not fewshot.is_task(problem):
        raise UserError("--strategy ttt needs tasks with demonstrations: --dataset arclab:test, arc:PATH or a "
                        "few-shot JSONL (reasoning/fewshot.py)")
    demos, test_input = fewshot.values_of(problem.meta)
    grid = problem.meta["answer_format"] == GRID
    all_grids = [g for pair in demos for g in pair] + [test_input] if grid else []
    # The first n augmentations predict; the first ttt_augment train (the same list: identity first).
    augs = augmentations(max(cfg.n, cfg.ttt_augment), all_grids, seed=0) if grid else [Augmentation()]
    predict = augs[:cfg.n]
    prompts = [lm.prompt(fewshot.render([(a.forward(x), a.forward(y)) for x, y in demos] if grid else demos,
                                        a.forward(test_input) if grid else test_input)[0]) for a in predict]
    train = {"steps": cfg.ttt_steps, "lr": cfg.ttt_lr, "method": cfg.ttt_method, "rank": cfg.ttt_rank,
             "batch_size": cfg.ttt_batch}
    texts = training_texts(lm, demos, augs[:cfg.ttt_augment], grid) if cfg.ttt_steps > 0 else []
    if texts:
        if not hasattr(lm, "adapt_complete"):
            raise UserError(f"--strategy ttt trains the model, which the {getattr(lm, 'backend', '?')} backend cannot: "
                            "use --backend transformers")
        log, rows = lm.adapt_complete(texts, prompts, train=train, n=1, max_new_tokens=cfg.max_new_tokens,
                                      temperature=0.0, stop=fewshot.STOP)
        training = log.to_dict()
    else:
        rows = lm.complete(prompts, n=1, max_new_tokens=cfg.max_new_tokens, temperature=0.0, stop=fewshot.STOP)
        training = {"method": None, "examples": 0, "steps": 0, "losses": [], "tokens": 0, "seconds": 0.0}
    tree.update(tree.root, meta=dict(tree.root.meta, ttt=training))
    answers, nodes = [], []
    for aug, [completion] in zip(predict, rows):
        raw = fewshot.extract(problem.meta["answer_format"], completion.text)
        answer = raw
        if grid and raw is not None:
            answer = format_grid(aug.inverse(grid_of(raw)))
        correct = None if problem.answer is None else answer is not None and answer == problem.answer
        node = tree.add(tree.root, completion.text, tokens=completion.n_tokens, logprob=completion.logprob,
                        status=TERMINAL, finish_reason=completion.finish_reason, answer=answer, correct=correct,
                        meta={"augmentation": aug.to_dict(), "augmentation_name": aug.name, "raw_answer": raw,
                              "answer_method": "task"})
        answers.append(answer)
        nodes.append(node)
    votes, ranked = Counter(a for a in answers if a is not None), fewshot.rank(answers)
    if not ranked:
        return Outcome(None, nodes[0].seq if nodes else None, {}, {"attempts": []})
    chosen = nodes[answers.index(ranked[0])]
    tree.select(chosen)
    attempts = ranked[:2]
    meta = {"attempts": attempts}
    if problem.answer is not None:
        meta["pass_at_2"] = problem.answer in attempts
    return Outcome(ranked[0], chosen.seq, dict(votes), meta)


STRATEGY = Strategy(
    "ttt", "test-time training on the task's own demonstrations, then a vote over augmented predictions "
    "(tasks with demonstrations: arclab, arc)", search,
    knobs=("n", *KNOBS, "max_new_tokens"),
    budget=("n",), verifier=IGNORES, kind=SAMPLES, order=90, trains=True)
