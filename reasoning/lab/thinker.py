"""The lab thinker (`--model lab-think`): the lab reasoner taught to think before it answers — to work
each step's digits before it states the step's result, and, when asked to think longer, to check every
step by its inverse and repair the ones a check rejects — so that more thinking buys accuracy.

What it writes after the prompt (`Question: ...\\nAnswer:\\n`)::

    <think>
    Lena earns 3 more: 93 + 3: 3900+3000=69000, so 93 + 3 = 96 coins.

    Lena splits them into 4 bags: 96 / 4: 9/4=2r1, 16/4=4r0, so 96 / 4 = 24 coins.

    So the answer is 24.
    </think>

    The answer is 24.</s>

and, when budget forcing replaces its end of thinking by "Wait"::

    Wait, let me check every step again.

    Check: 6900-3000=39000: 93, right.

    Check: 4200*4000=69000: 96, right.

    So the answer is 24.

Why this shape. The reasoner's errors are digit slips (at level 5, 123 of its 136 wrong greedy answers
have a wrong result in a step whose operands are right), and a model of its size neither computes
reliably nor sees its own slips in the layout it writes. The PRM's arithmetic checker showed that the
same small Llama computes almost perfectly in a digit-aligned layout: fixed width, least significant
digit first, where each result digit depends on digits at fixed offsets and a carry
(reasoning/verifiers/arith_checker.py). So each step of thinking first does the digit work — a sum,
difference or product by one digit in that layout, a quotient by short division (`23/4=5r3`: one
small-table fact per digit, most significant first) — and only then states the result, reading it back.
The first version of the thinker (card: "tried") wrote the result first and checked it after, and its
checks learnt to copy the result they were checking.

Where more thinking pays:
- the digit work itself: a budget that cuts thinking (`--max-think-tokens`) leaves the rest of the
  steps to the answer, written as the plain reasoner writes them (the training traces include such
  cuts, so the model learns to finish from the last step it stated);
- no thinking (`--no-think`: an empty think block) is the plain reasoner;
- budget forcing (`--think-tokens`: "Wait" instead of the end of thinking) starts a pass that checks
  every step by the inverse operation — c - b = a for a sum, c + b = a for a difference, c / y by
  short division for a product, c * b = a for a quotient: work that the first pass never wrote, so it
  cannot be copied — and redoes the first step whose check fails and every step after it. Training
  traces with such passes carry a first-pass slip in most of them (its wrong digits are in the text,
  never in the loss), and some add a third pass, so a second "Wait" checks again.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

from reasoning.lab import data
from reasoning.lab.data import Op, canonical_ops, varied_solution
from reasoning.lab.prm import _apply, _rewrite, slip
from reasoning.problems import EQUATION_RE
from reasoning.lab.train import IGNORE, ModelConfig, TrainConfig, device, save, total_steps, train_loop
from reasoning.thinking import THINK_CLOSE, THINK_OPEN
from reasoning.types import DEFAULT_DELIMITER

SEP = DEFAULT_DELIMITER  # paragraphs of thinking and steps of the answer are separated by a blank line
OPEN = THINK_OPEN + "\n"
CLOSE = "\n" + THINK_CLOSE + SEP  # what ends thinking, in the traces and when a budget cuts it
AGAIN = "Wait, let me check every step again."  # a second pass; budget forcing's "Wait" starts it
WIDTH = 4  # the checker's layout: operands of up to 4 digits, results of up to 5


# --- the digit work and the checks -----------------------------------------------------------------

def _rev(n: int, width: int) -> str:
    return str(n)[::-1].ljust(width, "0")


def long_division(a: int, b: int) -> tuple[str, int, int]:
    """Short division of `a` by a one-digit `b`, most significant digit first, one stage per digit of
    `a` (`23/4=5r3`: what is carried in, the quotient digit, the remainder carried out): each stage is
    a fact of a small table. Returns (stages text, quotient, remainder)."""
    stages, r, q = [], 0, 0
    for d in str(a):
        n = r * 10 + int(d)
        stages.append(f"{n}/{b}={n // b}r{n % b}")
        q, r = q * 10 + n // b, n % b
    return ", ".join(stages), q, r


def scratch(op: str, a: int, b: int, c: int | None = None) -> str:
    """The digit work of `a op b` before its result is stated: a sum, difference or product by one
    digit in the checker's layout (least significant digit first, fixed width: 173 + 58 is
    `3710+8500=13200`), a quotient by short division. `c`: a wrong result the work slipped to."""
    true = _apply(op, a, b)
    c = true if c is None else c
    if op == "/":
        stages, _, _ = long_division(a, b)
        return stages
    x, y = (a, b) if op != "*" or b <= 9 else (b, a)
    return f"{_rev(x, WIDTH)}{op}{_rev(y, WIDTH)}={_rev(c, WIDTH + 1)}"


def worked_step(step: str, op: Op, a: int, b: int, c: int, slipped: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """A step of thinking: the short step's head and expression, the scratch, then the step stated with
    its result (`Lena earns 3 more: 93 + 3: 3900+3000=69000, so 93 + 3 = 96 coins.`). With `slipped`,
    the result `c` is wrong and the scratch and the result are the masked spans."""
    full = _rewrite(step, op, a, b, c)
    m = EQUATION_RE.search(full)
    expr = full[m.start():m.start() + full[m.start():].index(" =")]
    work = scratch(op.op, a, b, c if slipped else None)
    head = f"{full[:m.start()]}{expr}: "
    text = f"{head}{work}, so {full[m.start():]}"
    if not slipped:
        return text, []
    at = text.rindex(f"= {c}") + 2
    return text, [(len(head), len(head) + len(work)), (at, at + len(str(c)))]


def check_line(op: str, a: int, b: int, c: int) -> tuple[str, bool]:
    """The check of a written step `a op b = c`: the step restated (so the check reads the step it
    checks right beside its work), then the inverse operation, which the step's own digit work never
    wrote (so a check cannot copy it): c - b = a for a sum, c + b = a for a difference, c / y by short
    division for a product by y, c * b = a for a quotient. Returns (paragraph, passed)."""
    if op == "+" and c >= b:
        z, want = c - b, a
        work, got = f"{_rev(c, WIDTH)}-{_rev(b, WIDTH)}={_rev(z, WIDTH + 1)}", str(c - b)
    elif op == "+":  # a result below an operand is wrong: recompute the sum
        z, want = a + b, c
        work, got = f"{_rev(a, WIDTH)}+{_rev(b, WIDTH)}={_rev(z, WIDTH + 1)}", str(z)
    elif op == "-":
        z, want = c + b, a
        work, got = f"{_rev(c, WIDTH)}+{_rev(b, WIDTH)}={_rev(z, WIDTH + 1)}", str(z)
    elif op == "*":
        x, y = (a, b) if b <= 9 else (b, a)
        work, q, r = long_division(c, y)
        z, want, got = (q if r == 0 else None), x, f"{q}" if r == 0 else f"{q}r{r}"
    else:
        z, want = c * b, a
        work, got = f"{_rev(c, WIDTH)}*{_rev(b, WIDTH)}={_rev(z, WIDTH + 1)}", str(z)
    ok = z == want and not (op == "+" and c < b)
    return f"Check: {a} {op} {b} = {c}: {work}: {got}, {'right' if ok else f'not {want}'}.", ok


def checkable(op: Op, a: int) -> bool:
    """The layouts hold the step: operands of at most WIDTH digits, one factor or divisor of one digit."""
    c = _apply(op.op, a, op.b)
    if c < 0 or max(a, op.b, c) >= 10 ** WIDTH:
        return False
    if op.op == "*":
        return min(a, op.b) <= 9
    return op.op != "/" or op.b <= 9


# --- training traces --------------------------------------------------------------------------------------

@dataclass
class Trace:
    """A training completion: its text and the character spans that carry no loss (slipped numbers)."""

    text: str
    masked: list[tuple[int, int]]
    weighted: list[tuple[int, int]] = field(default_factory=list)  # check results (ThinkerConfig.check_weight)


class _Writer:
    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.masked: list[tuple[int, int]] = []
        self.weighted: list[tuple[int, int]] = []

    def add(self, text: str, masked: list[tuple[int, int]] = ()) -> None:
        for start, end in masked:
            self.masked.append((self.length + start, self.length + end))
        if text.startswith("Check: ") and not masked:  # what the check computes and concludes
            self.weighted.append((self.length + text.index("=") + 1, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)

    def paragraph(self, text: str, masked: list[tuple[int, int]] = ()) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self.add(SEP)
        self.add(text, masked)


@dataclass(frozen=True)
class TraceConfig:
    slip: float = 0.05  # a step's digit work slips in the first pass (the wrong digits are masked)
    cut: float = 0.2  # the thinking is cut at a random point (a budget): the answer finishes the steps, or
    # after a conclusion ("So the answer is N."), gives the last one
    no_think: float = 0.12  # an empty think block, the plain reasoner's solution after it
    second_pass: float = 0.35  # "Wait, let me check every step again." after the first pass
    planted: float = 0.7  # in a trace with a second pass: one first-pass slip that its checks find
    third_pass: float = 0.35  # after a pass of checks: one more (a second, third "Wait"), at most max_extra_passes
    max_extra_passes: int = 3


def _chain(ops: list[Op], slips: dict[int, int]) -> list[tuple[int, int]] | None:
    """(a, c) written at every step when step i states slips[i] instead of its result and the steps
    after it carry that number on; None when a slip would make a later step impossible (a negative
    number, an inexact quotient, a number the layouts cannot hold)."""
    out, value = [], ops[0].a
    for i, op in enumerate(ops):
        if not checkable(op, value) or (op.op == "/" and value % op.b):
            return None
        c = slips.get(i, _apply(op.op, value, op.b))
        if c < 2 or c >= 10 ** WIDTH or (i in slips and not _check_holds(op, c)):
            return None
        out.append((value, c))
        value = c
    return out


def _check_holds(op: Op, c: int) -> bool:
    """A slipped result that the check layouts can still hold (so the second pass can test it)."""
    return op.op != "/" or c * op.b < 10 ** (WIDTH + 1)


def thinking_trace(problem, rng: random.Random, cfg: TraceConfig = TraceConfig()) -> Trace:
    """One training completion for `problem` (a generated arithmetic problem)."""
    ops = canonical_ops(problem)
    answer_steps = varied_solution(problem, rng)  # the gold steps as the reasoner writes them
    steps = _short_steps(problem, rng)  # thinking uses the short wording
    if rng.random() < cfg.no_think:
        return Trace(OPEN + CLOSE + data.completion_text(answer_steps), [])
    second = rng.random() < cfg.second_pass
    slips: dict[int, int] = {}
    candidates = [i for i in range(len(ops)) if rng.random() < cfg.slip]
    if second and rng.random() < cfg.planted:
        candidates.append(rng.randrange(len(ops)))
    gold = _chain(ops, {})
    if gold is None:  # (never at the generator's sizes; kept honest) the plain solution, no thinking
        return Trace(OPEN + CLOSE + data.completion_text(answer_steps), [])
    for i in sorted(set(candidates)):
        wrong = slip(gold[i][1], rng)
        if _chain(ops, {**slips, i: wrong}) is not None and wrong != gold[i][1]:
            slips[i] = wrong
    written = _chain(ops, slips)
    w = _Writer()
    w.add(OPEN)
    done_at: list[int] = []  # after step i's paragraph: the trace length (for cuts)
    for i, (op, (a, c)) in enumerate(zip(ops, written)):
        # a step after a slip carries the wrong number on faithfully: only the slip itself is masked
        text, masked = worked_step(steps[i], op, a, op.b, c, slipped=i in slips)
        w.paragraph(text, masked)
        done_at.append(w.length)
    final = written[-1][1]
    w.paragraph(f"So the answer is {final}.")
    concluded = [(w.length, final)]  # after each "So the answer is N.": (trace length, N)
    if second:
        final = _check_pass(w, ops, steps, written)
        concluded.append((w.length, final))
        for _ in range(cfg.max_extra_passes):  # more passes of checks, as a second, third "Wait" asks
            if rng.random() >= cfg.third_pass:
                break
            _check_pass(w, ops, steps, gold)
            concluded.append((w.length, final))
    thinking_end = w.length
    if rng.random() < cfg.cut:  # a budget ended the thinking somewhere
        # before the first conclusion only in a trace without slips (the answer then finishes the
        # gold steps); after it anywhere (the answer is the last conclusion the thinking reached)
        first = len(OPEN) if not slips and not second else concluded[0][0]
        if first < thinking_end:
            cut = rng.randrange(first, thinking_end)
            text = "".join(w.parts)[:cut]
            masked = [(s, min(e, cut)) for s, e in w.masked if s < cut]
            reached = [n for end, n in concluded if end <= cut]
            if reached:
                rest = [f"The answer is {reached[-1]}."]
            else:
                rest = answer_steps[sum(1 for end in done_at if end <= cut):]  # finish from the last step stated
            return Trace(text + CLOSE + data.completion_text(rest), masked,
                         [(s, min(e, cut)) for s, e in w.weighted if s < cut])
    w.add(CLOSE + data.completion_text([f"The answer is {final}."]))
    return Trace("".join(w.parts), w.masked, w.weighted)


def _check_pass(w: _Writer, ops: list[Op], steps: list[str], written: list[tuple[int, int]]) -> int:
    """"Wait, let me check every step again.": each written step checked by its inverse; at the first
    that fails, "Wait, " and the step worked again, then every step after it; the answer it reaches."""
    w.paragraph(AGAIN)
    for i, (op, (a, c)) in enumerate(zip(ops, written)):
        line, ok = check_line(op.op, a, op.b, c)
        w.paragraph(line)
        if ok:
            continue
        value = a
        for j in range(i, len(ops)):
            c = _apply(ops[j].op, value, ops[j].b)
            text, _ = worked_step(steps[j], ops[j], value, ops[j].b, c)
            w.paragraph(("Wait, " if j == i else "") + text)
            value = c
        break
    else:
        value = written[-1][1]
    w.paragraph(f"So the answer is {value}.")
    return value


def _short_steps(problem, rng: random.Random) -> list[str]:
    """The gold steps in the short wording ("Tom buys 3 more: 5 + 3 = 8 apples.")."""
    for _ in range(50):
        steps = varied_solution(problem, rng)[:-1]
        if all(", so " not in s for s in steps):
            return steps
    raise RuntimeError("no short wording drawn")


def training_example(index: int, level: int, seed: int, cfg: TraceConfig = TraceConfig()) -> tuple[str, Trace]:
    problem = data.training_problem(index, level, seed)
    rng = random.Random(f"think:{seed}:{index}")
    from reasoning.lab.tokenizer import prompt_text

    return prompt_text(problem.question), thinking_trace(problem, rng, cfg)


# --- training ---------------------------------------------------------------------------------------------

@dataclass
class ThinkerConfig(TrainConfig):
    """The committed thinker's settings (model card): fine-tuned from the committed reasoner."""

    steps: int = 1000
    restart_steps: int = 0
    batch_size: int = 16  # rows of max_len tokens, packed
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup: int = 50
    levels: tuple[int, ...] = (1, 2, 3, 4, 4, 5, 5)
    log_every: int = 25
    model: ModelConfig = field(default_factory=lambda: ModelConfig(max_len=1024))
    trace: TraceConfig = field(default_factory=TraceConfig)
    # Weight of the check results in the loss (weighted_loss); 1: the plain LM loss. Tried for the card:
    # 4.0 with slips at 0.6 (copying a step's result into its check then pays less than computing it)
    # was far worse after 300 of 700 steps (level 3: 14% vs 64% thinking), so the committed thinker keeps 1.
    check_weight: float = 1.0


def add_think_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    """<think> and </think> as one token each (not special: they decode as text, as the trace parser reads them)."""
    tokenizer.add_tokens([THINK_OPEN, THINK_CLOSE])


# What the check results may weigh in the loss (ThinkerConfig.check_weight): copying the step's result
# into the check is right whenever the step was, so the model may learn to copy rather than compute.
CHECK_WEIGHT = 4.0


def encode_trace(prompt: str, trace: Trace, tokenizer, max_len: int,
                 check_weight: float = CHECK_WEIGHT) -> tuple[list[int], list[int], list[float]]:
    """Ids, labels and loss weights of one example: the loss is on the completion except its masked
    spans; the check results weigh `check_weight`."""
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    enc = tokenizer(trace.text, add_special_tokens=False, return_offsets_mapping=True)
    overlaps = lambda spans, s, e: any(s < e2 and s2 < e for s2, e2 in spans)  # noqa: E731
    labels = [IGNORE if overlaps(trace.masked, s, e) else t for t, (s, e) in zip(enc.input_ids, enc.offset_mapping)]
    weights = [check_weight if overlaps(trace.weighted, s, e) else 1.0 for s, e in enc.offset_mapping]
    return (p + enc.input_ids)[:max_len], ([IGNORE] * len(p) + labels)[:max_len], ([1.0] * len(p) + weights)[:max_len]




def weighted_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy with per-token weights (batch["weights"])."""
    logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
    labels, weights = batch["labels"][:, 1:], batch["weights"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                             ignore_index=IGNORE, reduction="none")
    keep = (labels.reshape(-1) != IGNORE).float()
    w = weights.reshape(-1) * keep
    return (loss * w).sum() / w.sum()


def packed_batch(step: int, cfg: "ThinkerConfig", tokenizer) -> dict[str, torch.Tensor]:
    """`cfg.batch_size` rows of `cfg.model.max_len` tokens, each filled with whole examples of mixed
    levels (the prompt carries no loss), the rest padding: no attention mask is needed (causal
    attention never lets an example see the padding after it), so attention takes its fast path and
    little compute goes to padding. Examples of step s come from indices s * EXAMPLES_PER_STEP on:
    the stream is reproducible and can be read from any step."""
    rng = random.Random(f"think-levels:{cfg.seed}:{step}")
    index = step * EXAMPLES_PER_STEP
    pad = tokenizer.pad_token_id
    rows, labels, weights = [], [], []
    pending = None
    for _ in range(cfg.batch_size):
        ids, lab, wts = [], [], []
        while True:
            if pending is None:
                prompt, trace = training_example(index, rng.choice(cfg.levels), cfg.seed, cfg.trace)
                index += 1
                pending = encode_trace(prompt, trace, tokenizer, cfg.model.max_len, cfg.check_weight)
            if ids and len(ids) + len(pending[0]) > cfg.model.max_len:
                break
            ids, lab, wts = ids + pending[0], lab + pending[1], wts + pending[2]
            pending = None
        rows.append(ids + [pad] * (cfg.model.max_len - len(ids)))
        labels.append(lab + [IGNORE] * (cfg.model.max_len - len(lab)))
        weights.append(wts + [1.0] * (cfg.model.max_len - len(wts)))
    if index > (step + 1) * EXAMPLES_PER_STEP:
        raise RuntimeError("a step used more examples than EXAMPLES_PER_STEP")
    return {"input_ids": torch.tensor(rows), "labels": torch.tensor(labels), "weights": torch.tensor(weights)}


EXAMPLES_PER_STEP = 1000


def train_thinker(reasoner_dir: Path, cfg: ThinkerConfig, out: Path | None = None, log=print, on_step=None):
    """Fine-tune the reasoner on thinking traces; save an HF folder to `out` when given."""
    log = log or (lambda line: None)
    torch.set_num_threads(cfg.threads)
    started, cpu_started = time.time(), time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(reasoner_dir)
    add_think_tokens(tokenizer)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM.from_pretrained(reasoner_dir, dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.max_position_embeddings = cfg.model.max_len
    model.to(device())
    n_params = sum(p.numel() for p in model.parameters())
    log(f"thinker: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {cfg.steps} steps x {cfg.batch_size}")

    def batches(step: int):
        return packed_batch(step, cfg, tokenizer)

    def plain_loss(model, batch):  # the LM loss on the labels (the committed thinker)
        return model(input_ids=batch["input_ids"], labels=batch["labels"]).loss

    losses = train_loop(model, batches, cfg, log, on_step, loss_fn=weighted_loss if cfg.check_weight != 1 else plain_loss)
    info = {"kind": "thinker", "params": n_params, "from": str(reasoner_dir.name), "train_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "examples": total_steps(cfg) * cfg.batch_size, "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
        (Path(out) / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return model, tokenizer, info
