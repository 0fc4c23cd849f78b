"""Train the lab PRM: a process reward model that scores each step of a path, learnt from the lab
reasoner's own sampled solutions with automatic step labels (the Math-Shepherd recipe, CPU-sized).

Labels: an exact arithmetic check, no Monte Carlo rollouts. A generated problem knows its operations
(a op b = c per step), so step i of a path is correct when its equation is step i of the problem
(operands in either order for + and *) and every step before it was correct; "The answer is N." is
correct when N is the gold answer after correct steps. This is what rollouts estimate ("can this
path still reach the gold answer by valid steps?"), without their cost or their noise; a path that
reaches the gold answer through a wrong step is labelled wrong from that step on.

Data: for each training problem (seeds disjoint from the evaluation sets), `samples` paths sampled
from the reasoner at the search temperatures, plus gold paths with one step slipped the way the
reasoner slips (a digit changed, a carry missed, an operand misread), so the PRM also sees clean
near-miss negatives whose only fault is the arithmetic it has to check.

Model: the reasoner's weights, fine-tuned as a causal LM that predicts "+" or "-" after the step tag
`ки` of the Math-Shepherd calling convention (reasoning/verifiers/prm_conventions.py), so the PRM
plugs into the PRM registry like any Math-Shepherd-style model: `--verifier prm:lab`
(reasoning/verifiers/prm.py does the scoring; this module only trains).
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

from reasoning.lab import data
from reasoning.lab.data import ANSWER_RE, COMMUTATIVE, Op, canonical_ops
from reasoning.lab.tokenizer import BAD, GOOD
from reasoning.lab.train import ModelConfig, TrainConfig, device, save, train_loop
from reasoning.problems import EQUATION_RE
from reasoning.tree import split_steps
from reasoning.types import DEFAULT_DELIMITER, Problem


@dataclass
class PRMConfig(TrainConfig):
    """The committed PRM's settings (model card: third checkpoint)."""

    steps: int = 2000
    restart_steps: int = 0
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 50
    problems: int = 3000  # training problems whose sampled paths label the PRM
    levels: tuple[int, ...] = (1, 2, 3, 3, 4, 4, 5, 5)  # where the reasoner errs, more problems
    samples: int = 4  # reasoner samples per problem, split over `temperatures`
    temperatures: tuple[float, ...] = (0.7, 1.0)  # search samples at 0.7-1.0: the PRM should know both
    corruptions: int = 2  # gold paths with one slipped step, per problem
    log_every: int = 100
    max_new_tokens: int = 320
    model: ModelConfig = field(default_factory=ModelConfig)


# --- automatic step labels --------------------------------------------------------------------------

def step_labels(problem: Problem, steps: list[str]) -> list[bool]:
    """True for each step that keeps the path on a valid route to the gold answer (see module doc)."""
    ops, labels, ok = canonical_ops(problem), [], True
    for i, step in enumerate(steps):
        answer = ANSWER_RE.search(step)
        if answer:
            ok = ok and i == len(ops) and int(answer.group(1)) == int(problem.answer)
        else:
            ok = ok and i < len(ops) and _matches(step, ops[i])
        labels.append(ok)
    return labels


def _matches(step: str, op: Op) -> bool:
    found = EQUATION_RE.findall(step)
    if len(found) != 1:  # one operation per step
        return False
    a, sym, b, c = found[0]
    a, b, c = int(a), int(b), int(c)
    operands_ok = (a, b) == (op.a, op.b) or (sym in COMMUTATIVE and (b, a) == (op.a, op.b))
    return sym == op.op and operands_ok and c == op.c


def corrupt(problem: Problem, rng: random.Random, path: list[str] | None = None) -> list[str]:
    """A gold path (`path`, a valid solution such as data.varied_solution; default the canonical one)
    with one step wrong, the way the reasoner slips: its result with a digit changed, added or dropped,
    off by a power of ten (a carry) or by 1-2, or an operand read wrong in the equation. Later steps
    carry the wrong value on with right arithmetic, so only the PRM's check of that step can tell."""
    steps = list(path or problem.meta["solution"])
    ops = canonical_ops(problem)
    i = rng.randrange(len(ops))
    value = None
    for j, op in enumerate(ops):
        a = op.a if value is None else value
        b = op.b
        c = _apply(op.op, a, b)
        if j == i:
            if rng.random() < 0.2:  # an operand read wrong, the arithmetic on it right
                b = b + rng.choice([1, 2, 3, 10])
                c = _apply(op.op, a, b)
            else:
                c = slip(c, rng)
        if j >= i:  # (a later subtraction may go below zero: rare, kept so the committed data reproduces)
            steps[j] = _rewrite(steps[j], op, a, b, c)
        value = c
    steps[-1] = f"The answer is {value}."
    return steps


def slip(c: int, rng: random.Random) -> int:
    """A wrong result near `c` of the kinds the reasoner's samples show (173 -> 273, 108 -> 138, 30 -> 300)."""
    digits = str(c)
    for _ in range(20):
        kind = rng.choice(["digit", "digit", "carry", "small", "length"])
        if kind == "digit":
            k = rng.randrange(len(digits))
            wrong = digits[:k] + rng.choice([d for d in "0123456789" if d != digits[k]]) + digits[k + 1:]
        elif kind == "carry":
            wrong = str(c + rng.choice([-1, 1]) * 10 ** rng.randrange(max(1, len(digits))))
        elif kind == "small":
            wrong = str(c + rng.choice([-2, -1, 1, 2]))
        elif len(digits) > 1 and rng.random() < 0.5:  # a digit dropped
            k = rng.randrange(len(digits))
            wrong = digits[:k] + digits[k + 1:]
        else:  # a digit doubled
            k = rng.randrange(len(digits))
            wrong = digits[:k + 1] + digits[k:]
        if wrong.isdigit() and (wrong == "0" or not wrong.startswith("0")) and int(wrong) != c:
            return int(wrong)
    return c + 1


def _apply(sym: str, a: int, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[sym]


def _rewrite(step: str, op: Op, a: int, b: int, c: int) -> str:
    """Put new numbers into a gold step of either wording: the running total `a` where the text
    states it (long wording: "has A apples and ...") and the equation, in the step's operand order.
    An operand read wrong changes only the equation (the text still quotes the question)."""
    m = EQUATION_RE.search(step)
    x = int(m.group(1))
    swapped = x != op.a and op.op in COMMUTATIVE and x == op.b
    first, second = (b, a) if swapped else (a, b)
    head = step[:m.start()]
    if a != op.a and ", so " in head:
        head = head.replace(f" {op.a} ", f" {a} ", 1)
    return f"{head}{first} {op.op} {second} = {c}{step[m.end():]}"


# --- the reasoner's own samples -----------------------------------------------------------------------

def sample_paths(lm, problems: list[Problem], samples: int, temperature: float, max_new_tokens: int,
                 seed: int, log=print) -> list[tuple[Problem, list[str]]]:
    """`samples` sampled solutions per problem from a LanguageModel, split into steps."""
    out, started, tokens = [], time.time(), 0
    chunk = max(1, 64 // samples)
    for start in range(0, len(problems), chunk):
        batch = problems[start:start + chunk]
        rows = lm.complete([lm.prompt(p.question) for p in batch], n=samples, max_new_tokens=max_new_tokens,
                           temperature=temperature, seed=seed + start)
        for problem, row in zip(batch, rows):
            for completion in row:
                tokens += completion.n_tokens
                out.append((problem, [s.text for s in split_steps(completion.text, DEFAULT_DELIMITER)]))
    if log:
        log(f"sampled {len(out)} paths, {tokens} tokens in {time.time() - started:.0f} s")
    return out


# --- encoding for the Math-Shepherd convention ------------------------------------------------------

def encode(tokenizer, question: str, steps: list[str]):
    """Token ids and the step-tag position of each step, exactly as the PRM registry encodes them."""
    from reasoning.verifiers.prm_conventions import CONVENTIONS

    return CONVENTIONS["math-shepherd"].encode(tokenizer, question, steps)


def encode_prm_batch(items: list[tuple[str, list[str], list[bool]]], tokenizer, max_len: int) -> dict:
    """Right-padded ids plus, per row, the tag positions and their labels (1 good, 0 bad)."""
    encoded = [encode(tokenizer, q, steps) for q, steps, _ in items]
    width = min(max_len, max(len(e.ids) for e in encoded))
    ids = torch.full((len(items), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    targets = torch.full((len(items), width), -1.0)  # -1: no step tag here
    for r, (e, (_, _, labels)) in enumerate(zip(encoded, items)):
        n = min(len(e.ids), width)
        ids[r, :n] = torch.tensor(e.ids[:n])
        mask[r, :n] = 1
        for anchor, label in zip(e.anchors, labels):
            if anchor < n:
                targets[r, anchor] = float(label)
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}


def step_logits(model, input_ids, attention_mask, good_id: int, bad_id: int) -> torch.Tensor:
    """logit(P("+")) at every position: the difference of the two candidate tokens' logits."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logits[..., good_id] - logits[..., bad_id]


def prm_loss(model, batch, good_id: int, bad_id: int) -> torch.Tensor:
    """Binary cross-entropy at the step tags only: softmax over {+, -} is a sigmoid of the difference."""
    diff = step_logits(model, batch["input_ids"], batch["attention_mask"], good_id, bad_id)
    at_tags = batch["targets"] >= 0
    return torch.nn.functional.binary_cross_entropy_with_logits(diff[at_tags], batch["targets"][at_tags])


# --- training -----------------------------------------------------------------------------------------

def build_prm_data(lm, cfg: PRMConfig, log=print) -> list[tuple[str, list[str], list[bool]]]:
    """Labelled paths: reasoner samples plus `corruptions` slipped gold paths per problem."""
    levels = cfg.levels
    seed = cfg.seed + 1000  # other problems than the reasoner trained on (still outside the eval sets)
    problems = [data.training_problem(i, levels[i % len(levels)], seed) for i in range(cfg.problems)]
    paths = []
    per_temperature = max(1, cfg.samples // len(cfg.temperatures))
    for k, temperature in enumerate(cfg.temperatures):
        paths += sample_paths(lm, problems, per_temperature, temperature, cfg.max_new_tokens, seed + k, log)
    rng = random.Random(f"corrupt:{seed}")
    paths += [(p, corrupt(p, rng, data.varied_solution(p, rng))) for p in problems for _ in range(cfg.corruptions)]
    items = [(p.question, steps, step_labels(p, steps)) for p, steps in paths if steps]
    labels = [x for _, _, ls in items for x in ls]
    if log:
        log(f"PRM data: {len(items)} paths, {len(labels)} steps, {sum(labels) / len(labels):.0%} labelled good")
    return items


def train_prm(reasoner_dir: Path, cfg: PRMConfig, out: Path | None = None, log=print):
    """Sample from the reasoner, label the steps, fine-tune a copy of the reasoner into the PRM."""
    from reasoning.backends.transformers_lm import TransformersLM

    log = log or (lambda line: None)
    torch.set_num_threads(cfg.threads)
    started, cpu_started = time.time(), time.process_time()
    lm = TransformersLM(reasoner_dir, name="lab reasoner", model_id="lab", prompt_style="chat", max_batch_rows=64)
    torch.set_num_threads(cfg.threads)  # the backend picks its own thread count; training uses ours
    items = build_prm_data(lm, cfg, log)
    sampled_s = time.time() - started
    tokenizer: PreTrainedTokenizerFast = AutoTokenizer.from_pretrained(reasoner_dir)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM.from_pretrained(reasoner_dir).to(device())
    good_id, bad_id = (tokenizer.convert_tokens_to_ids(t) for t in (GOOD, BAD))
    order = random.Random(f"prm-order:{cfg.seed}")

    def batches(step: int):
        picked = [items[order.randrange(len(items))] for _ in range(cfg.batch_size)]
        return encode_prm_batch(picked, tokenizer, cfg.model.max_len)

    log(f"PRM: fine-tuning the reasoner's weights for {cfg.steps} steps x {cfg.batch_size}")
    losses = train_loop(model, batches, cfg, log, loss_fn=lambda m, b: prm_loss(m, b, good_id, bad_id))
    info = {"kind": "prm", "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(time.time() - started, 1), "sampling_seconds": round(sampled_s, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "paths": len(items), "steps_labelled": sum(len(x[2]) for x in items),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "labels": "exact arithmetic check against the generator's operations (no rollouts)",
            "convention": "math-shepherd", "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
    return model, tokenizer, info
