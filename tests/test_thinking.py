"""Thinking traces (reasoning/thinking.py): inline <think> tags, templates that open the tag, a server's
reasoning_content; thoughts with their turns; a thinking completion stored as thought and answer nodes
with their tokens; the answer read after the thinking, none for a trace cut while thinking."""
from __future__ import annotations

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.strategies import get_strategy
from reasoning.thinking import parse_turn_words, split_thinking, thoughts, turn_of
from reasoning.tree import Tree
from reasoning.types import Problem

TRACE = ("<think>\nTom has 3 * 4 = 12 apples.\n\nWait, he eats 2: 12 - 2 = 10.\n\n"
         "But check: 10 + 2 = 12. Right.\n\nHmm, so 10.\n</think>\n\nThe answer is 10.")


def test_inline_tags_split_into_thinking_and_answer():
    split = split_thinking(TRACE)
    assert split.closed and split.thinking.strip().startswith("Tom has") and split.answer.strip() == "The answer is 10."
    assert TRACE[split.answer_start:] == split.answer
    assert TRACE[split.thinking_start:split.thinking_start + len(split.thinking)] == split.thinking


def test_a_template_that_opened_the_tag_and_a_servers_reasoning_field():
    opened = split_thinking("First 3 * 4 = 12.\n</think>\nThe answer is 12.", opened=True)
    assert opened.closed and opened.thinking.strip() == "First 3 * 4 = 12." and opened.answer.strip() == "The answer is 12."
    # without the opening tag but with the closing one, the text started inside the thinking too
    assert split_thinking("First 3 * 4 = 12.\n</think>\nThe answer is 12.").thinking.strip() == "First 3 * 4 = 12."
    field = split_thinking("The answer is 12.", reasoning="First 3 * 4 = 12.")
    assert field.closed and field.thinking == "First 3 * 4 = 12." and field.answer == "The answer is 12."


def test_no_thinking_and_a_trace_cut_while_thinking():
    plain = split_thinking("12 - 2 = 10.\n\nThe answer is 10.")
    assert plain.thinking is None and plain.answer == "12 - 2 = 10.\n\nThe answer is 10."
    cut = split_thinking("<think>\nTom has 12.\n\nWait, he")
    assert not cut.closed and cut.answer == "" and cut.thinking.strip() == "Tom has 12.\n\nWait, he"
    empty = split_thinking("<think>\n\n</think>\n\nThe answer is 3.")
    assert empty.closed and empty.thinking.strip() == "" and empty.answer.strip() == "The answer is 3."


def test_thoughts_are_paragraphs_and_turns_open_them():
    split = split_thinking(TRACE)
    found = thoughts(TRACE, split.thinking_start, split.thinking_start + len(split.thinking))
    assert [t.text for t in found] == ["Tom has 3 * 4 = 12 apples.", "Wait, he eats 2: 12 - 2 = 10.",
                                       "But check: 10 + 2 = 12. Right.", "Hmm, so 10."]
    assert [t.turn for t in found] == [None, "Wait", "But", "Hmm"]
    assert all(TRACE[t.start:t.end] == t.text for t in found)
    assert turn_of("**Wait**, no.") == "Wait" and turn_of("Waiting for Tom.") is None and turn_of("but no") is None
    assert turn_of("Actually, 11.", parse_turn_words("Actually, Hold on")) == "Actually"



def test_a_thinking_chain_is_stored_as_thoughts_then_the_answer_with_tokens_per_phase():
    lm = ScriptedLM([TRACE])
    tree = Tree("What is 3 * 4 - 2?")
    problem = Problem(key="p", question="What is 3 * 4 - 2?", answer="10")
    outcome = get_strategy("cot")(problem, lm, None, SearchConfig(max_new_tokens=200), tree)
    steps = tree.nodes[1:]
    assert [n.meta["phase"] for n in steps] == ["think"] * 4 + ["answer"]
    assert [n.meta.get("turn") for n in steps] == [None, "Wait", "But", "Hmm", None]
    assert steps[-1].text == "The answer is 10." and outcome.answer == "10"
    completion = lm.complete([lm.prompt(problem.question)], n=1, max_new_tokens=200, temperature=0)[0][0]
    assert sum(n.tokens for n in steps) == completion.n_tokens  # every token in exactly one node
    leaf = steps[-1].meta
    assert leaf["think_tokens"] + leaf["answer_tokens"] == completion.n_tokens and leaf["answer_tokens"] >= 4
    assert leaf["thinking_closed"] is True


def test_numbers_inside_the_thinking_are_not_the_answer_and_a_cut_trace_has_none():
    problem = Problem(key="p", question="q", answer="10")
    cut = Tree("q")
    outcome = get_strategy("cot")(problem, ScriptedLM(["<think>\nTom has 12 apples.\n\nWait, 10"]), None,
                                  SearchConfig(max_new_tokens=200), cut)
    assert outcome.answer is None and cut.nodes[-1].correct is False
    assert cut.nodes[-1].meta["thinking_closed"] is False and cut.nodes[-1].meta["answer_tokens"] == 0
