"""Answer extractors (reasoning.answers.EXTRACTORS): each benchmark's own, and which markers each trusts."""
from __future__ import annotations

import pytest

from reasoning.answers import EXTRACTORS, extract_answer
from reasoning.problems import SHIPPED, dataset_extractor


@pytest.mark.parametrize("extractor, text, value, method", [
    ("standard", "Work.\n\nThe answer is 12.", "12", "answer_is"),
    ("standard", "So \\boxed{7}.\n#### 9", "7", "boxed"),
    ("math", "Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$. I hope it is correct.", "\\frac{1}{2}", "boxed"),
    ("math", "#### 9", "9", "last_number"),  # no #### marker in MATH-style grading: the number is a guess
    ("gsm8k", "She pays 3 * 4 = 12.\n#### 12", "12", "gsm8k"),
    ("gsm8k", "\\boxed{7} but #### 8", "8", "gsm8k"),  # #### first
    ("boxed", "The answer is 12.", None, "none"),  # strict: no box, no answer
    ("boxed", "It is $\\boxed{x+1}$.", "x+1", "boxed"),
])
def test_each_extractor_reads_its_markers_in_its_order(extractor, text, value, method):
    found = extract_answer(text, extractor=extractor)
    assert (found.value, found.method) == (value, method)


def test_every_benchmark_names_a_known_extractor_and_other_sets_get_the_standard_one():
    assert dataset_extractor("gsm8k") == "gsm8k"
    assert dataset_extractor("math500:level=5") == "math"
    assert dataset_extractor("arith:3") == dataset_extractor("my.jsonl") == dataset_extractor("hf:x") == "standard"
    assert {bench.extractor for bench in SHIPPED.values()} <= set(EXTRACTORS)
