"""The ladder of lab reasoners (issue 16, "scale what?"): lab-xs, lab-s and lab, trained on the same
data stream for the same steps, only the size differs. The committed models load and answer by name,
`reasoning.lab.ladder()` gives their pre-training compute, and `lab train --size` refuses a bad size
and records 6ND for a run it trains."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoning.answers import extract_answer, is_equiv
from reasoning.backends import DEFAULT_VERIFIERS, MODELS, load_model
from reasoning.lab import LADDER, ladder
from reasoning.problems import load_problems
from reasoning.strategies import default_verifier

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    env = {**os.environ, "THINKTRACE_THREADS": os.environ.get("THINKTRACE_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_ladder_is_registered_with_the_lab_prm_as_its_verifier():
    for name in ("lab-xs", "lab-s", "lab"):
        assert name in MODELS and DEFAULT_VERIFIERS[name] == "prm:lab"
        assert default_verifier("best_of_n", name, None) == "prm:lab"
    assert [MODELS[name].folder() for name in LADDER] == list(LADDER.values())


def test_the_ladder_grows_in_params_and_compute_on_the_same_tokens():
    rows = ladder()
    assert [r["model"] for r in rows] == ["lab-xs", "lab-s", "lab"]
    assert all(set(r) == {"model", "params", "pretrain_flops", "train_tokens"} for r in rows)
    params, flops = [r["params"] for r in rows], [r["pretrain_flops"] for r in rows]
    assert params == sorted(set(params)) and flops == sorted(set(flops))
    assert len({r["train_tokens"] for r in rows}) == 1  # the same data stream: only the size differs
    for r in rows:
        assert r["pretrain_flops"] == 6 * r["params"] * r["train_tokens"]
    assert rows[-1]["params"] == 951_552


def test_each_ladder_model_records_its_size_and_both_cycles():
    for name, folder in LADDER.items():
        info = json.loads((folder / "training.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        assert info["params_non_embedding"] == info["params"] - config["vocab_size"] * config["hidden_size"]
        assert info["examples"] == 3300 * 32 and info["config"]["seed"] == 1, name
        assert info["config"]["model"]["d_model"] == config["hidden_size"], name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lab-xs", "lab-s"])
def test_a_ladder_model_loads_by_name_and_solves_a_level_1_problem(name):
    lm = load_model(name)
    assert lm.n_params == ladder()[["lab-xs", "lab-s"].index(name)]["params"]
    problems = load_problems("arith:1", limit=5)
    rows = lm.complete([lm.prompt(p.question) for p in problems], n=1, max_new_tokens=128, temperature=0)
    right = [is_equiv(extract_answer(c.text, allow_fallback=False).value, p.answer) for p, [c] in zip(problems, rows)]
    assert sum(right) >= 4, [c.text for [c] in rows]  # greedy level 1 is 95-100% on 200 problems


def test_a_bad_size_exits_2_with_one_line_and_writes_nothing(tmp_path):
    proc = cli("lab", "train", "--size", "l", "--reasoner-only", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: --size must be one of xs, s, m (got 'l')"]
    assert not (tmp_path / "out").exists()


def test_a_size_other_than_m_needs_reasoner_only_and_a_matching_resume(tmp_path):
    proc = cli("lab", "train", "--size", "xs", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--reasoner-only" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("lab", "train", "--size", "xs", "--reasoner-only", "--resume-from", str(LADDER["lab"]),
               "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "not --size xs" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_tiny_xs_run_records_its_tokens_and_6nd(tmp_path):
    proc = cli("lab", "train", "--steps", "2", "--restart-steps", "0", "--size", "xs", "--reasoner-only",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reasoner"]  # no PRM, checker or thinker
    info = json.loads((tmp_path / "reasoner" / "training.json").read_text())
    assert info["config"]["model"] == {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 192, "max_len": 768}
    assert info["pretrain_flops"] == 6 * info["params"] * info["train_tokens"] > 0
    assert info["params"] == ladder()[0]["params"]  # the same architecture as the committed lab-xs

    from transformers import AutoTokenizer

    from reasoning.lab.train import SIZES, TrainConfig, stream_tokens

    cfg = TrainConfig(steps=2, restart_steps=0, model=SIZES["xs"])
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "reasoner")
    # the regenerated stream counts what training counted
    assert stream_tokens(cfg, tokenizer)["tokens"] == info["train_tokens"]
    assert info["train_loss_tokens"] < info["train_tokens"] <= info["train_padded_tokens"]
