"""Test-time training runs without a model, for the pages and the report: a scripted model that knows
each arclab:test task's answer under every augmentation the ttt strategy uses, is right on a
prediction with a probability that grows with its training steps (decided by a hash, so every run is
the same), and otherwise writes a wrong row of its own. Its `adapt_complete` returns a falling loss."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from reasoning import fewshot
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.grids import augmentations, format_grid
from reasoning.problems import load_problems
from thinktrace import runner

DATASET = "arclab:test"


def _unit(*parts) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


@dataclass
class FakeLog:
    """What reasoning.finetune.TrainLog gives the strategy (without importing torch)."""

    steps: int
    examples: int
    losses: list[float] = field(default_factory=list)
    tokens: int = 0

    def to_dict(self) -> dict:
        return {"method": "full", "examples": self.examples, "steps": self.steps, "losses": self.losses,
                "tokens": self.tokens, "trainable_params": 1000, "seconds": 0.01}


class TaskLM(ScriptedLM):
    """Knows the answer of every prompt the ttt strategy writes for the first `limit` tasks."""

    def __init__(self, limit: int, n_augs: int = 8):
        self.answers: dict[str, tuple[str, str, str]] = {}  # rendered task -> (augmented gold, key, augmentation)
        for p in load_problems(DATASET, limit=limit):
            demos, test_input = fewshot.values_of(p.meta)
            gold = fewshot.grid_answer(p.answer)
            grids = [g for pair in demos for g in pair] + [test_input]
            for aug in augmentations(n_augs, grids, seed=0):
                text = fewshot.render([(aug.forward(x), aug.forward(y)) for x, y in demos], aug.forward(test_input))[0]
                self.answers[text] = (format_grid(aug.forward(gold)), p.key, aug.name)
        self.steps = 0
        super().__init__(self._write, name="scripted-arc")

    def _write(self, prompt: str, sample: int, call: int) -> str:
        task = prompt.removeprefix("Question: ").removesuffix("\nAnswer:\n")
        gold, key, aug = self.answers[task]
        hard = _unit(key, "hard")  # some tasks are harder than others
        if _unit(key, aug, "right") < 0.15 + 0.08 * self.steps - 0.3 * hard:
            return gold + "\n"
        row = list(gold.strip().split("\n")[0])
        spot = int(_unit(key, aug, "where") * len(row))
        row[spot] = str((int(row[spot]) + 1 + int(_unit(key, aug, "what") * 8)) % 10)
        return "".join(row) + "\n\n"

    def adapt_complete(self, texts, prompts, *, train, n, max_new_tokens, temperature, stop=None, seed=None):
        steps = train["steps"]
        log = FakeLog(steps, len(texts), [round(2.0 * 0.8 ** i, 5) for i in range(steps)], 40 * steps)
        self.steps = steps
        try:
            return log, self.complete(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                      stop=stop, seed=seed)
        finally:
            self.steps = 0


def ttt_run(store, steps: int, n: int, limit: int = 6, name: str | None = None) -> str:
    """A finished ttt run of the scripted model on the first `limit` arclab:test tasks."""
    lm = TaskLM(limit, max(n, 8))
    request = runner.RunRequest(strategy="ttt", dataset=DATASET, model="scripted", verifier=None,
                                name=name or f"ttt steps={steps} n={n}",
                                config=SearchConfig(n=n, ttt_steps=steps, max_new_tokens=32)).validate()
    run_id = runner.create_run(store, request, load_problems(DATASET, limit=limit), lm, None)
    runner.execute(store, run_id, lm, None)
    return run_id
