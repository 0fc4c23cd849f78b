"""The engine half of the Learn lesson "learning at test time" (reasoning/lab/ttt_lesson.py): it runs the
ttt strategy itself, reports every training step's loss as it happens (reasoning.finetune.adapted's
on_step), leaves lab-arc's weights as they were, and fits a 2-core CPU in seconds."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "reasoning/lab/models/arc/config.json").is_file(),
                                reason="lab-arc weights not installed")


def digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_the_lesson_reports_each_step_and_restores_the_model():
    from reasoning.backends import load_model
    from reasoning.lab.ttt_lesson import in_context, solve, task

    lm = load_model("lab-arc")
    problem = task(0)
    before = digest(lm.model)
    guess = in_context(lm, problem)
    assert len(guess.nodes) == 2 and guess.training["steps"] == 0 and guess.nodes[1].meta["augmentation_name"] == "identity"
    seen = []
    started = time.perf_counter()
    learnt = solve(lm, problem, 6, 4, on_step=lambda step, loss: seen.append((step, loss)))
    assert time.perf_counter() - started < 30  # seconds on a shared 2-core CPU (the target: 10 s at 24 steps)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [round(loss, 5) for _, loss in seen] == learnt.training["losses"]
    assert [n.meta["augmentation_name"] for n in learnt.nodes[1:]][:2] == ["identity", "flip_h"]
    assert sum(learnt.outcome.votes.values()) == sum(n.answer is not None for n in learnt.nodes[1:])
    assert learnt.correct == (learnt.outcome.answer == problem.answer)
    assert digest(lm.model) == before  # the base weights are back
