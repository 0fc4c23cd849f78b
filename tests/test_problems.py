"""Specification of the problem sets: the arithmetic generator and the JSONL / HF loaders."""
from __future__ import annotations

import json
import re
import sys
import types
from fractions import Fraction

import pytest

from reasoning.errors import UserError
from reasoning.problems import NAMES, generate_arith, load_problems

EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": Fraction}


def equations(problem):
    """The (a, op, b, c) of every "a op b = c" in the solution, in order."""
    found = [EQUATION.findall(step) for step in problem.meta["solution"]]
    return [(int(a), op, int(b), int(c)) for step in found for a, op, b, c in step]


# --- the generator ------------------------------------------------------------------------------

def test_same_seed_gives_the_same_problems_and_problem_i_does_not_depend_on_count():
    assert generate_arith(3, 10, seed=7) == generate_arith(3, 10, seed=7)
    assert generate_arith(3, 4, seed=7) == generate_arith(3, 10, seed=7)[:4]


def test_different_seeds_give_different_problems():
    first = {p.question for p in generate_arith(2, 20, seed=0)}
    second = {p.question for p in generate_arith(2, 20, seed=1)}
    assert len(first & second) <= 1


def test_problems_are_labelled_with_dataset_key_difficulty_and_seed():
    problem = generate_arith(4, 3, seed=5)[2]
    assert (problem.dataset, problem.key, problem.difficulty) == ("arith:4", "s5-2", 4)
    assert problem.meta["seed"] == 5


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_difficulty_is_the_number_of_one_operation_steps(difficulty):
    for problem in generate_arith(difficulty, 30, seed=1):
        steps = problem.meta["solution"]
        assert len(steps) == difficulty + 1
        assert [len(EQUATION.findall(step)) for step in steps[:-1]] == [1] * difficulty
        assert steps[-1] == f"The answer is {problem.answer}."


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
def test_gold_answer_is_exact_and_every_intermediate_a_non_negative_integer(difficulty):
    for problem in generate_arith(difficulty, 30, seed=2):
        chain = equations(problem)
        value = chain[0][0]
        for a, op, b, c in chain:
            assert a == value  # each step continues from the previous result
            value = APPLY[op](a, b)
            assert value == c and value >= 0 and Fraction(value).denominator == 1
        assert problem.answer == str(value)


def test_level_one_uses_small_numbers_and_higher_levels_larger_ones():
    small = [n for p in generate_arith(1, 50) for eq in equations(p) for n in (eq[0], eq[2], eq[3])]
    large = [n for p in generate_arith(5, 50) for eq in equations(p) for n in (eq[0], eq[2], eq[3])]
    assert max(small) <= 20
    assert max(large) > 100


def test_all_four_operations_appear():
    ops = {eq[1] for p in generate_arith(3, 50) for eq in equations(p)}
    assert ops == {"+", "-", "*", "/"}


def test_the_story_mentions_every_operand_and_asks_a_question():
    problem = generate_arith(3, 1, seed=11)[0]
    for _, _, b, _ in equations(problem):
        assert str(b) in problem.question
    assert str(equations(problem)[0][0]) in problem.question
    assert problem.question.endswith("?")


def test_wording_varies_across_many_templates():
    problems = generate_arith(3, 50, seed=0)
    sentences = set()
    for problem in problems:
        text = re.sub(r"\d+", "N", problem.question)
        for name, _ in NAMES:
            text = re.sub(rf"\b{name}\b", "X", text)
        sentences.update(re.split(r"(?<=[.?]) ", text))
    units = {re.search(r"How (?:many|much) (\w+)", p.question).group(1) for p in problems}
    assert len(sentences) >= 40
    assert len(units) >= 5


def test_generator_rejects_out_of_range_difficulty():
    with pytest.raises(UserError, match="difficulty 6 is out of range 1..5"):
        generate_arith(6, 3)


# --- load_problems: generated sets --------------------------------------------------------------

def test_arith_spec_gives_twenty_problems_by_default_and_limit_takes_the_first():
    assert len(load_problems("arith:2")) == 20
    assert load_problems("arith:2", limit=3, seed=4) == generate_arith(2, 3, seed=4)


def test_mixed_levels_come_round_robin_with_the_level_in_the_key():
    problems = load_problems("arith:1-3", limit=5)
    assert [p.difficulty for p in problems] == [1, 2, 3, 1, 2]
    assert [p.key for p in problems] == ["s0-d1-0", "s0-d2-0", "s0-d3-0", "s0-d1-1", "s0-d2-1"]
    assert {p.dataset for p in problems} == {"arith:1-3"}
    assert problems[3].question == generate_arith(1, 2)[1].question
    assert len(load_problems("arith:1-3")) == 60


# --- load_problems: JSONL files -----------------------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def test_gsm8k_rows_take_the_number_after_hashes_without_commas(tmp_path):
    spec = write_jsonl(tmp_path / "gsm8k_test.jsonl", [
        {"question": "Natalia sold 48 clips in April and 1,000 in May. How many in all?",
         "answer": "48 + 1000 = <<48+1000=1048>>1048\n#### 1,048"},
        {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"},
    ])
    first, second = load_problems(spec)
    assert (first.key, first.answer, second.key, second.answer) == ("1", "1048", "2", "4")
    assert first.question.startswith("Natalia")
    assert first.meta["solution"] == "48 + 1000 = <<48+1000=1048>>1048"
    assert re.fullmatch(r"gsm8k_test#[0-9a-f]{8}", first.dataset)


def test_math_rows_take_answer_or_the_boxed_solution_and_parse_levels(tmp_path):
    spec = write_jsonl(tmp_path / "math.jsonl", [
        {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "level": "Level 3", "id": "alg/1"},
        {"problem": "Find $x$ if $x^2=9$, $x>0$.", "solution": "So $x = \\boxed{3}$.", "difficulty": 2},
        {"problem": "What is $1+1$?", "answer": 2, "level": "Level ?"},
    ])
    problems = load_problems(spec)
    assert [(p.key, p.answer, p.difficulty) for p in problems] == [
        ("alg/1", "\\frac{1}{2}", 3), ("2", "3", 2), ("3", "2", None)]


def test_two_files_with_the_same_name_but_different_content_get_different_datasets(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = write_jsonl(tmp_path / "a" / "data.jsonl", [{"question": "1+1?", "answer": "2"}])
    two = write_jsonl(tmp_path / "b" / "data.jsonl", [{"question": "2+2?", "answer": "4"}])
    assert load_problems(one)[0].dataset != load_problems(two)[0].dataset


def test_blank_lines_are_skipped_keys_default_to_line_numbers_and_limit_takes_the_first_rows(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(5)]
    spec = write_jsonl(tmp_path / "d.jsonl", ["", *rows])
    problems = load_problems(spec, limit=2)
    assert [(p.key, p.answer) for p in problems] == [("2", "0"), ("3", "1")]  # keys are line numbers


# --- load_problems: Hugging Face ----------------------------------------------------------------

def fake_datasets(monkeypatch, load_dataset):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hf_rows_are_mapped_like_jsonl_with_test_as_default_split(monkeypatch):
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return [{"question": "What is 3 * 4?", "answer": "3 * 4 = 12\n#### 12"}]

    fake_datasets(monkeypatch, load_dataset)
    [problem] = load_problems("hf:openai/gsm8k")
    assert (problem.dataset, problem.key, problem.answer) == ("hf:openai/gsm8k", "0", "12")
    load_problems("hf:openai/gsm8k:main:train")
    assert calls == [("openai/gsm8k", None, "test"), ("openai/gsm8k", "main", "train")]


def test_hf_without_the_datasets_package_says_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UserError, match="install datasets"):
        load_problems("hf:openai/gsm8k")


def test_hf_unreachable_hub_says_so(monkeypatch):
    def load_dataset(name, config, split):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)\ndetails")

    fake_datasets(monkeypatch, load_dataset)
    with pytest.raises(UserError, match="hub unreachable and not cached") as error:
        load_problems("hf:openai/gsm8k")
    assert "\n" not in str(error.value)


# --- bad input: one clear line each -------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("gsm8k-train", "unknown problem set 'gsm8k-train'"),
    ("arith:7", "difficulty 7 is out of range 1..5"),
    ("arith:0-2", "difficulty 0 is out of range 1..5"),
    ("arith:3-1", "first level must not exceed the second"),
    ("arith:easy", "expected arith:D or arith:A-B"),
    ("hf:", "expected hf:NAME"),
])
def test_bad_specs_are_rejected(spec, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_problems(spec)


def test_limit_below_one_is_rejected():
    with pytest.raises(UserError, match="limit must be at least 1"):
        load_problems("arith:1", limit=0)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.jsonl: file not found"):
        load_problems(str(tmp_path / "nope.jsonl"))


def test_an_explicit_null_answer_makes_an_ungraded_question_and_a_missing_one_says_how(tmp_path):
    [problem] = load_problems(write_jsonl(tmp_path / "own.jsonl", [{"question": "Why is the sky blue?", "answer": None}]))
    assert problem.answer is None and problem.question == "Why is the sky blue?"
    with pytest.raises(UserError, match=re.escape('write "answer": null')):
        load_problems(write_jsonl(tmp_path / "typo.jsonl", [{"question": "a", "anwser": "1"}]))


@pytest.mark.parametrize("rows, message", [
    ([{"question": "a", "answer": "1"}, "{not json"], "data.jsonl line 2: not valid JSON"),
    ([{"question": "a", "answer": "1"}, "", {"answer": "2"}],
     "data.jsonl line 3: missing field 'question' (or 'problem')"),
    ([{"question": "a"}], "data.jsonl line 1: missing field 'answer' (or 'solution')"),
    ([{"problem": "a", "solution": "no box here"}], "data.jsonl line 1: no final answer"),
    (["[1, 2]"], "data.jsonl line 1: expected a JSON object"),
    ([{"question": "a", "answer": "1", "id": 5}, {"question": "b", "answer": "2", "id": 5}],
     "data.jsonl line 2: duplicate key '5'"),
    (["", "  "], "no problems in it"),
])
def test_bad_rows_are_reported_with_their_line_number(tmp_path, rows, message):
    spec = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(UserError, match=re.escape(message)) as error:
        load_problems(spec)
    assert "\n" not in str(error.value)


# --- hostile files: refused with one line each, before any model loads ---------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("line, message", [
    ('{"question": "a", "answer": NaN}', "line 1: NaN is not a number (non-finite numbers are refused)"),
    ('{"question": "a", "answer": -Infinity}', "line 1: -Infinity is not a number (non-finite numbers are refused)"),
    ('{"question": "a", "answer": 1e400}', "line 1: the number 1e400 is beyond the range of a double"),
    ('{"question": "a", "answer": ' + "9" * 5000 + "}", "line 1: the integer 999999999999999999999999… does not fit in 64 bits"),
    ('{"question": "a", "answer": "1", "meta": ' + DEEP + "}", "line 1: JSON nested deeper than 64 levels"),
    ('{"question": "a", "answer": "1", "level": 99999999999999999999}', "the integer 99999999999999999999 does not fit in 64 bits"),
    ('{"question": "a", "answer": "1", "difficulty": "Level ' + "9" * 5000 + '"}', "is too large"),
    ('{"question": "a", "answer": [4]}', "field 'answer' must be a string or a number, not a list"),
    ('{"question": "a", "answer": {"x": 4}}', "field 'answer' must be a string or a number, not an object"),
    ('{"question": "a", "answer": true}', "field 'answer' must be a string or a number, not true/false"),
    ('{"question": ["a"], "answer": "1"}', "field 'question' must be a string or a number, not a list"),
    ('{"question": "a", "answer": "1", "id": {"k": 1}}', "field 'id' must be a string or a number"),
    ('{"problem": "a", "solution": ["\\\\boxed{1}"]}', "field 'solution' must be a string or a number"),
    ('{"question": "a\\ud800", "answer": "1"}', "field 'question' holds a character that is not valid Unicode"),
])
def test_non_finite_huge_deep_or_non_scalar_values_are_refused_with_their_line(tmp_path, line, message):
    spec = write_jsonl(tmp_path / "data.jsonl", [line])
    with pytest.raises(UserError, match=re.escape(message)) as error:
        load_problems(spec)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


def test_numbers_and_null_are_still_answers_and_a_large_storable_level_is_kept(tmp_path):
    spec = write_jsonl(tmp_path / "ok.jsonl", [{"question": "a", "answer": 4, "level": 2**63 - 1},
                                               {"question": "b", "answer": 2.5}, {"question": "c", "answer": None}])
    assert [(p.answer, p.difficulty) for p in load_problems(spec)] == [("4", 2**63 - 1), ("2.5", None), (None, None)]


def test_a_file_that_is_not_utf8_is_refused_with_its_line_and_byte(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"question": "1+1?", "answer": "2"}\n{"question": "caf\xe9?", "answer": "2"}\n')
    with pytest.raises(UserError, match=re.escape("latin1.jsonl line 2: not UTF-8 (byte 53)")):
        load_problems(str(path))
    path.write_bytes(b'\xef\xbb\xbf{"question": "1+1?", "answer": "2"}\n')  # a BOM is not part of the row
    assert load_problems(str(path))[0].answer == "2"


@pytest.mark.parametrize("spec", ["arith:99999999999", "arith:" + "9" * 5000, "arith:1-" + "9" * 5000])
def test_huge_levels_in_a_spec_are_out_of_range_in_one_short_line(spec):
    with pytest.raises(UserError, match="is out of range 1..5") as error:
        load_problems(spec)
    assert len(str(error.value)) < 100
