"""Specification of final-answer extraction, equivalence and voting."""
from __future__ import annotations

import threading
import time

import pytest

from reasoning.answers import (Extracted, Vote, answer_keys, canonical, extract_answer, group_answers, is_equiv,
                               majority, vote)
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.strategies import get_strategy
from reasoning.tree import Tree
from reasoning.types import Problem


# --- extraction ---------------------------------------------------------------------------------

def test_boxed_wins_over_every_other_marker():
    text = "The answer is 7.\n#### 9\nSo the result is \\boxed{12} apples, not 3."
    assert extract_answer(text) == Extracted("12", "boxed")


def test_the_last_boxed_is_taken_and_nested_braces_are_kept_whole():
    text = "First \\boxed{1}, then corrected: \\boxed{\\frac{1}{\\sqrt{2}}}."
    assert extract_answer(text).value == "\\frac{1}{\\sqrt{2}}"


def test_an_unclosed_boxed_falls_back_to_the_previous_complete_one():
    assert extract_answer("\\boxed{5} ... \\boxed{6").value == "5"


def test_answer_is_beats_gsm8k_marker_and_strips_period_dollars_and_commas():
    assert extract_answer("#### 3\nThe final answer is $1,250$.") == Extracted("1250", "answer_is")


def test_answer_is_is_case_insensitive_and_takes_the_last_one():
    text = "I thought the answer is 4. Checking again, THE ANSWER IS 3.5. Done."
    assert extract_answer(text) == Extracted("3.5", "answer_is")


def test_answer_is_drops_unit_words_after_a_number_but_keeps_words_otherwise():
    assert extract_answer("The answer is 42 apples.").value == "42"
    assert extract_answer("The answer is x + 1.").value == "x + 1"


def test_gsm8k_marker_is_read_with_commas_removed():
    assert extract_answer("She sold 48 + 24 = 72 clips.\n#### 1,072") == Extracted("1072", "gsm8k")


def test_last_number_fallback_is_flagged():
    found = extract_answer("We have 10 - 3 = 7 left, then 2 more gives 9")
    assert found == Extracted("9", "last_number")
    assert found.found and found.flagged


def test_marked_answers_are_not_flagged():
    assert not extract_answer("The answer is 8.").flagged


def test_without_fallback_an_unmarked_number_is_no_answer():
    found = extract_answer("so we get 9", allow_fallback=False)
    assert found == Extracted(None, "none")
    assert not found.found and not found.flagged


def test_text_without_any_answer_gives_none_not_an_exception():
    for text in ["", "I am not sure how to solve this.", "\\boxed{}"]:
        assert extract_answer(text) == Extracted(None, "none")


# --- free-form answers: the stored answer is the final value ------------------------------------

FREE_FORM = ("The angles of a triangle add up to 180 degrees.\n\n"
             "So the answer is 180 - 3 = 180 - 9 = ... = 90 degre\u2026")


@pytest.mark.parametrize("text, value", [
    (FREE_FORM, "90"),
    ("So the answer is 180 - 3 = 177 = 90 degrees. Done.", "90"),
    ("The answer is \\frac{3}{4} \\cdot 8 = 6.", "6"),
    ("The answer is that she has 5 apples left.", "5"),
    ("The answer is 1,234.00.", "1234.00"),
    ("The answer is 8.", "8"),  # the lab model's answers: unchanged
    ("The answer is y = 2x + 3.", "y = 2x + 3"),  # an equation in unknowns stays whole
    ("The answer is 5x - 7y + 11z + 4 = 0.", "5x - 7y + 11z + 4 = 0"),
    ("The answer is $\\left( 3, \\frac{\\pi}{2} \\right)$.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("#### 72 clips", "72"),
])
def test_a_marked_answer_is_its_final_value_never_the_line(text, value):
    assert extract_answer(text).value == value


def test_a_chain_of_arithmetic_is_stored_and_graded_as_its_final_number():
    """A real chat model's free-form line ("180 - 3 = 180 - 9 = ... = 90 degre…") was stored whole and
    graded right because math-verify found a number inside it: the node now stores 90 and is graded on 90."""
    for gold, correct in (("90", True), ("177", False), ("180", False)):
        problem = Problem(key="angle", question="What is the angle?", answer=gold, dataset="test")
        tree = Tree(problem.question)
        outcome = get_strategy("cot")(problem, ScriptedLM([FREE_FORM]), None, SearchConfig(), tree)
        leaf = tree.nodes[outcome.node]
        assert (outcome.answer, leaf.answer, leaf.correct, leaf.meta["answer_method"]) == ("90", "90", correct, "answer_is")


# --- canonical keys and equivalence -------------------------------------------------------------

def test_canonical_maps_equal_numbers_to_one_reduced_exact_key():
    assert {canonical(v) for v in ["1,000", "1000", "+1000", "1000.0"]} == {"1000"}
    assert {canonical(v) for v in ["0.5", "1/2", "2/4", "\\frac{1}{2}", "\\dfrac{1}{2}"]} == {"1/2"}
    assert canonical("-0.25") == "-1/4"


def test_canonical_normalises_spacing_dollars_and_text_of_other_answers():
    assert canonical(" $x + 1$ ") == canonical("x+1") == "x+1"
    assert canonical("\\text{Paris}") == "Paris"
    assert canonical(None) is None


def test_half_as_decimal_fraction_and_latex_are_equivalent():
    assert is_equiv("0.5", "1/2")
    assert is_equiv("\\frac{1}{2}", "0.5")
    assert is_equiv("\\frac12", "1/2")  # not a plain number: math-verify decides


def test_thousands_commas_do_not_matter():
    assert is_equiv("1,000", "1000")


def test_symbolic_answers_are_compared_by_math_verify():
    assert is_equiv("1+x", "x+1")
    assert is_equiv("\\sqrt{4}", "2")


def test_different_values_are_not_equivalent():
    assert not is_equiv("3", "4")
    assert not is_equiv("0.333", "1/3")  # plain numbers compare exactly
    assert not is_equiv("x+1", "x+2")


def test_a_missing_answer_is_never_equivalent_even_to_another_missing_one():
    assert not is_equiv(None, "3")
    assert not is_equiv("3", None)
    assert not is_equiv(None, None)


def test_is_equiv_works_outside_the_main_thread():
    results = {}

    def grade():  # math-verify's signal-based timeout would raise here if not disabled
        results["symbolic"] = is_equiv("\\frac{2}{4}+x", "x+0.5")
        results["different"] = is_equiv("\\sqrt{2}", "2")

    worker = threading.Thread(target=grade)
    worker.start()
    worker.join()
    assert results == {"symbolic": True, "different": False}


# --- grouping and voting ------------------------------------------------------------------------

def test_group_answers_numbers_classes_by_first_appearance():
    assert group_answers(["3", "0.5", None, "3.0", "\\frac{1}{2}", "x+1", "1+x"]) == [0, 1, None, 0, 1, 2, 2]


def test_answer_keys_give_equivalent_answers_one_key_named_by_the_first_seen():
    keys = answer_keys(["\\sqrt{4}", "2", None, "3", "2^{1}"], [True, True, None, False, True])
    assert keys == ["\\sqrt{4}", "\\sqrt{4}", None, "3", "\\sqrt{4}"]


def test_answer_keys_split_a_class_whose_members_were_graded_differently():
    """A vote must never credit a wrong answer, even should equivalence and grading disagree."""
    assert answer_keys(["0.5", "1/2", "7"], [True, False, False]) == ["1/2#True", "1/2#False", "7"]


def test_majority_counts_equivalent_answers_together():
    winner, votes = majority(["1/2", "7", "0.5", "\\frac{1}{2}", None])
    assert winner == "1/2"
    assert votes == {"1/2": 3.0, "7": 1.0}


def test_majority_with_weights_sums_them_per_class():
    winner, votes = majority(["5", "6", "6.0"], weights=[0.9, 0.3, 0.4])
    assert winner == "5"
    assert votes == pytest.approx({"5": 0.9, "6": 0.7})


def test_a_tie_goes_to_the_class_seen_first():
    assert majority(["8", "9", "9", "8"])[0] == "8"
    assert majority(["9", "8", "8", "9"])[0] == "9"


def test_samples_without_answer_do_not_vote_and_all_missing_gives_no_winner():
    assert majority([None, "4", None]) == ("4", {"4": 1.0})
    assert majority([None, None]) == (None, {})
    assert majority([]) == (None, {})


def test_the_vote_picks_the_best_ranked_ballot_carrying_the_winner_in_its_own_wording():
    """The one vote of the strategies and the Learn page: majority over equivalent answers, weighted
    when weights are given, and the carrier of the winner ranked highest (earliest on ties)."""
    result = vote(["5", "7", "5.0", None], rank=[0.2, 0.9, 0.8, 1.0])
    assert (result.winner, result.table, result.chosen) == ("5", {"5": 2.0, "7": 1.0}, 2)  # "5.0" carries it
    weighted = vote(["5", "7", "5.0"], weights=[0.2, 0.9, 0.3])
    assert (weighted.winner, weighted.chosen) == ("7", 1) and weighted.table == pytest.approx({"5": 0.5, "7": 0.9})
    assert vote(["4", "4.0"]).chosen == 0  # no rank: the earliest carrier
    assert vote([None, None]) == vote([]) == Vote(None, {}, None)


def test_grouping_64_samples_is_fast():
    samples = [["12", "12.0", "1,2", "\\frac{24}{2}", "13", None, "x^2", "2x"][i % 8] for i in range(64)]
    start = time.perf_counter()
    majority(samples)
    assert time.perf_counter() - start < 2.0
