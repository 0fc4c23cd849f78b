"""The lab PRM's arithmetic checker: the restated layout as a specification, the committed checker's
arithmetic, how its verdicts combine with the PRM's step scores, and a tiny seeded training run
through the CLI."""
from __future__ import annotations

import random

import pytest

from reasoning.lab.checker import random_equation
from reasoning.lab.data import canonical_ops
from reasoning.problems import generate_arith, load_problems
from reasoning.verifiers.arith_checker import LENGTH, PREFIX, WIDTH, encode, restate

from tests.test_cli import assert_user_error, cli


# --- the layout (pure logic) --------------------------------------------------------------------------

@pytest.mark.parametrize("written,restated", [
    ((173, "+", 58, 231), (173, "+", 58, 231)),
    ((231, "-", 58, 173), (173, "+", 58, 231)),  # a - b = c is checked as c + b = a
    ((37, "*", 4, 148), (37, "*", 4, 148)),
    ((4, "*", 37, 148), (37, "*", 4, 148)),  # the one-digit factor goes second
    ((148, "/", 4, 37), (37, "*", 4, 148)),  # a / b = c is checked as c * b = a
    ((148, "/", 37, 4), (37, "*", 4, 148)),
    ((12, "*", 13, 156), None),  # two multi-digit factors: not this layout's job
    ((10 ** WIDTH, "+", 1, 10 ** WIDTH + 1), None),  # an operand too long
])
def test_each_written_equation_is_restated_as_a_sum_or_a_one_digit_product(written, restated):
    assert restate(*written) == restated


def test_a_restated_equation_holds_exactly_when_the_written_one_does():
    rng = random.Random(3)
    for _ in range(500):
        a, b = rng.randint(2, 500), rng.randint(2, 9)
        for sym, c in (("+", a + b), ("-", a - b), ("*", a * b), ("/", a // b)):
            x, op, y, z = restate(a, sym, b, c)
            assert (x + y if op == "+" else x * y) == z or (sym == "/" and a % b)
            x, op, y, z = restate(a, sym, b, c + 1)
            assert (x + y if op == "+" else x * y) != z


def test_numbers_are_written_least_significant_digit_first_at_fixed_width():
    from reasoning.verifiers.arith_checker import VOCAB

    ids = encode(173, "+", 58, 231)
    assert len(ids) == LENGTH and PREFIX == 2 * WIDTH + 3 and VOCAB[ids[0]] == "<s>"
    assert "".join(VOCAB[i] for i in ids[1:]) == "3710+8500=13200"  # WIDTH 4, the result one wider
    for _ in range(100):
        x, op, y, z = random_equation(random.Random(_))
        assert (x + y if op == "+" else x * y) == z and len(encode(x, op, y, z)) == LENGTH


# --- the committed checker ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checker():
    from reasoning.lab import CHECKER_DIR
    from reasoning.verifiers.arith_checker import ArithmeticChecker

    return ArithmeticChecker(CHECKER_DIR, device="cpu")


def test_the_committed_checker_recomputes_held_out_equations(checker):
    from reasoning.lab.checker import exact_accuracy

    assert exact_accuracy(checker.model, 1000, seed=12345) >= 0.98


def test_the_checker_believes_right_results_and_doubts_slipped_digits(checker):
    """On the evaluation problems' own equations: the right result is believed, a result with one
    digit changed (the reasoner's typical slip) is not."""
    right, slipped = [], []
    for level in (2, 3, 4):
        for problem in load_problems(f"arith:{level}", limit=20):
            for op in canonical_ops(problem):
                right.append((op.a, op.op, op.b, op.c))
                slipped.append((op.a, op.op, op.b, op.c + 1 if op.c % 10 != 9 else op.c - 1))
                slipped.append((op.a, op.op, op.b, op.c + 10))
    p_right, p_slipped = checker.probabilities(right), checker.probabilities(slipped)
    assert sum(p > 0.5 for p in p_right) / len(right) >= 0.97
    assert sum(p < 0.5 for p in p_slipped) / len(slipped) >= 0.97


def test_steps_without_an_equation_and_equations_out_of_layout_pass_unchecked(checker):
    [[answer, unsized]] = checker.step_checks([["The answer is 12.", "So 12 * 13 = 999 apples."]])
    assert answer == 1.0 and unsized == 1.0


@pytest.mark.slow
def test_the_lab_prm_scores_a_digit_slip_and_every_later_step_low():
    """Twins that differ in one digit of one step: the PRM alone scores them alike (the model card:
    ~50%), the PRM with its checker ranks the slipped step and the answer after it lower."""
    from reasoning.verifiers.prm import CheckedPRM, load_prm

    prm = load_prm("lab")
    assert isinstance(prm, CheckedPRM) and prm.n_params > prm.prm.n_params
    assert not isinstance(load_prm("lab", checker=False), CheckedPRM)
    caught = total = 0
    for level in (3, 4):
        for problem in load_problems(f"arith:{level}", limit=15):
            gold = problem.meta["solution"]
            op = canonical_ops(problem)[1]
            wrong = op.c + 1 if op.c % 10 != 9 else op.c - 1
            slipped = [gold[0], gold[1].replace(f"= {op.c} ", f"= {wrong} "), *gold[2:]]
            good, bad = prm.score(problem.question, [gold, slipped])
            assert good[0] == pytest.approx(bad[0], abs=1e-5)
            caught += bad[1] < 0.5 * good[1] and bad[-1] < 0.5 * good[-1]
            total += 1
    assert caught / total >= 0.9, f"{caught}/{total}"


# --- training ------------------------------------------------------------------------------------------

def test_a_tiny_checker_run_is_seeded_and_saves_a_loadable_model(tmp_path):
    import torch

    from reasoning.lab.checker import CheckerConfig, train_checker
    from reasoning.verifiers.arith_checker import ArithmeticChecker
    from reasoning.lab.train import ModelConfig

    cfg = CheckerConfig(steps=3, batch_size=8, warmup=1,
                        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=LENGTH))
    model_a, info = train_checker(cfg, tmp_path / "a", log=None)
    model_b, _ = train_checker(cfg, None, log=None)
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(a, b), name
    assert info["kind"] == "checker" and 0 <= info["held_out_exact"] <= 1
    [p] = ArithmeticChecker(tmp_path / "a", device="cpu").probabilities([(2, "+", 3, 5)])
    assert 0 < p < 1


def test_lab_train_checker_only_writes_the_checker_beside_the_prm(tmp_path):
    proc = cli("lab", "train", "--checker-only", "--checker-steps", "2", "--out", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "prm" / "checker" / "config.json").is_file()
    assert "checker saved to" in proc.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--checker-only", "--prm-only"], "exclude each other"),
    (["--checker-only", "--checker-steps", "0"], "--checker-steps must be at least 1"),
])
def test_lab_train_refuses_bad_checker_flags_with_one_line(tmp_path, args, fragment):
    assert_user_error(cli("lab", "train", "--out", str(tmp_path), *args), fragment)


def test_a_problem_generator_equation_fits_the_layout():
    """Every equation of every level's solutions can be checked (none falls back to unchecked)."""
    for level in range(1, 6):
        for problem in generate_arith(level, 50, seed=0):
            for op in canonical_ops(problem):
                assert restate(op.a, op.op, op.b, op.c) is not None
