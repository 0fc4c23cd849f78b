"""Thinking budgets (reasoning/thinking_budget.py) on a scripted thinking model: the minimum replaces the
end of thinking with "Wait" nodes until T thinking tokens, the maximum cuts thinking at T and closes it
before the answer, no-think writes an empty block; a model that does not think is left as it is. (The
same three on the real lab thinker: tests/test_lab_thinker.py.)"""
from __future__ import annotations

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.strategies import get_strategy
from reasoning.thinking_budget import EMPTY_BLOCK, ThinkingBudget, Budget
from reasoning.tree import Tree
from reasoning.types import Problem

TRACE = "<think>\nTom has 3 * 4 = 12 apples.\n\nHe eats 2: 12 - 2 = 10.\n</think>\n\nThe answer is 10."
AGAIN = ", let me check again: 10 + 2 = 12.\n</think>\n\nThe answer is 10."
PROBLEM = Problem(key="p", question="Tom has 3 bags of 4 apples and eats 2. How many are left?", answer="10")


def thinker(prompt: str, i: int, call: int) -> str:
    """Continues any prefix of TRACE; after a forced "Wait" checks again; after a closed block answers."""
    so_far = prompt.split("Answer:\n", 1)[1]
    if so_far.rstrip().endswith("</think>"):
        return ("" if so_far.endswith("\n\n") else "\n\n") + "The answer is 10."
    if so_far.endswith("Wait"):
        return AGAIN
    assert TRACE.startswith(so_far), so_far
    return TRACE[len(so_far):]


def run(strategy="cot", **knobs):
    lm = ScriptedLM(thinker)
    tree = Tree(PROBLEM.question)
    outcome = get_strategy(strategy)(PROBLEM, lm, None, SearchConfig(**{"max_new_tokens": 64, **knobs}), tree)
    return outcome, tree, lm


def test_without_a_budget_the_trace_is_stored_as_it_came():
    outcome, tree, lm = run()
    leaf = tree.nodes[outcome.node]
    assert len(lm.calls) == 1 and outcome.answer == "10"
    assert leaf.meta["think_tokens"] == 17 and "forced_waits" not in leaf.meta and "thinking_cut" not in leaf.meta


def test_the_minimum_turns_the_end_of_thinking_into_wait_nodes_until_t_thinking_tokens():
    outcome, tree, lm = run(think_tokens=30)
    leaf = tree.nodes[outcome.node]
    forced = [n for n in tree.nodes if n.meta.get("forced")]
    assert len(forced) == leaf.meta["forced_waits"] == 2  # 17 thinking tokens, then 10 more after each Wait
    assert all(n.text.startswith("Wait, let me check again") and n.meta["turn"] == "Wait" for n in forced)
    assert leaf.meta["think_tokens"] >= 30 and outcome.answer == "10" and leaf.correct
    assert lm.calls[0]["stop"] == ["</think>"]  # it stops at the end of thinking to decide
    path = [n.text for n in tree.path(leaf)]
    assert path[-1] == "The answer is 10." and path.count("The answer is 10.") == 1


def test_the_maximum_cuts_thinking_at_t_and_closes_it_before_the_answer():
    outcome, tree, lm = run(max_think_tokens=5)
    leaf = tree.nodes[outcome.node]
    think = [n for n in tree.path(leaf) if n.meta.get("phase") == "think"]
    assert leaf.meta["think_tokens"] == 5 and leaf.meta["thinking_cut"] and think[-1].meta["cut"]
    assert think[-1].text == "Tom has 3 *" and lm.calls[0]["max_new_tokens"] == 5
    assert lm.calls[1]["prompts"][0].endswith("3 *\n</think>\n\n") and outcome.answer == "10"


def test_no_think_writes_an_empty_block_and_the_model_answers_at_once():
    outcome, tree, lm = run(think=False)
    leaf = tree.nodes[outcome.node]
    assert lm.calls[0]["prompts"][0].endswith("Answer:\n" + EMPTY_BLOCK) and len(lm.calls) == 1
    assert leaf.meta["no_think"] and leaf.meta["think_tokens"] == 0 and leaf.meta["answer_tokens"] == 4
    assert [n.meta["phase"] for n in tree.path(leaf)] == ["answer"] and outcome.answer == "10"


def test_no_think_leaves_the_answer_max_new_tokens_alone():
    lm = ScriptedLM(thinker)
    [[c]] = ThinkingBudget(lm, Budget(think=False)).complete([lm.prompt(PROBLEM.question)], n=1, max_new_tokens=3,
                                                           temperature=0.0)
    assert lm.calls[0]["max_new_tokens"] == 3 and c.n_tokens == 3 and c.finish_reason == "length"


def test_n_samples_share_the_first_call_and_keep_their_own_budget():
    lm = ScriptedLM(thinker)
    [row] = ThinkingBudget(lm, Budget(minimum=20)).complete([lm.prompt(PROBLEM.question)], n=3, max_new_tokens=64,
                                                          temperature=0.8)
    assert lm.calls[0]["n"] == 3 and len(row) == 3
    assert all(c.text.count("Wait") == 1 and c.inserted[0][1] == "wait" for c in row)
    assert all(c.n_tokens == len(c.token_ends) == len(c.token_logprobs) for c in row)
    assert all(c.text[c.token_ends[-1] - 3:c.token_ends[-1]] == "10." for c in row)


def test_a_model_that_does_not_think_is_left_as_it_is():
    plain = "Tom has 3 * 4 = 12 apples.\n\nHe eats 2: 12 - 2 = 10.\n\nThe answer is 10."
    for knobs in (dict(think_tokens=40), dict(max_think_tokens=3)):
        lm = ScriptedLM(lambda prompt, i, call: plain[len(prompt) - 1:])  # continues the prompt "Q" + what it wrote
        [[c]] = ThinkingBudget(lm, Budget.of(SearchConfig(**knobs))).complete(["Q"], n=1, max_new_tokens=64,
                                                                            temperature=0.0)
        assert c.text == plain and c.inserted == []


def test_budget_forcing_on_a_thinking_model_is_the_minimum_and_a_sweep_sets_both():
    outcome, tree, _ = run("budget_forcing", think_tokens=30)
    assert outcome.meta["extensions"] == 2 and outcome.answer == "10"
    assert [n.text for n in tree.nodes if n.meta.get("forced")][0].startswith("Wait,")
    from reasoning.strategies import lookup

    assert lookup("budget_forcing").budget == ("think_tokens", "max_think_tokens")


def test_a_run_stored_before_thinking_budgets_keeps_its_meaning():
    old = {"n": 4, "think_tokens": 128, "max_new_tokens": 256}  # every run stored budget_forcing's knob
    assert SearchConfig.from_dict(old, "cot").think_tokens == 0
    assert SearchConfig.from_dict(old, "budget_forcing").think_tokens == 128
    assert SearchConfig.from_dict({**old, "max_think_tokens": 0}, "cot").think_tokens == 128


# --- the o1 plot: accuracy against thinking tokens ------------------------------------------------------

def test_the_loglinear_fit_reads_points_per_doubling_with_a_ci():
    from reasoning.budget import loglinear_fit

    slope, low, high, intercept = loglinear_fit([(32, 20, 100), (64, 40, 100), (128, 60, 100), (256, 80, 100)])
    assert abs(slope - 0.2) < 1e-9 and 0 < low < slope < high and abs(intercept - (0.2 - 5 * 0.2)) < 1e-9
    flat = loglinear_fit([(32, 50, 100), (1024, 50, 100)])
    assert abs(flat[0]) < 1e-12 and flat[1] < 0 < flat[2]
    assert loglinear_fit([(64, 3, 10)]) is None  # one budget: no line


def test_a_budget_forcing_sweep_on_a_thinking_model_draws_the_o1_plot(store, tmp_path, monkeypatch):
    import json

    from reasoning.budget import thinking_fits
    from thinktrace.curves import load_curves
    from thinktrace.sweep import run_sweep

    def wrong_when_short(prompt, i, call):  # a thinker right only once it checked again
        checked = "Wait" in prompt.split("Answer:\n", 1)[1]
        return thinker(prompt, i, call).replace("The answer is 10.", f"The answer is {5 if checked else 4}.")

    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"question": f"Tom has {k} + 2 apples?", "answer": "5"}) + "\n" for k in (3, 4)))
    lm = ScriptedLM(wrong_when_short)
    sid = run_sweep(store, ["budget_forcing"], [8, 24, 40], str(problems), model="scripted", lm=lm,
                    progress=False, cfg=SearchConfig(max_new_tokens=64))
    curves = load_curves(store, sid)
    thinking = sorted(p.think_tokens for p in curves.points)
    assert thinking[0] == 8 and thinking[-1] >= 40  # cut at 8; forced on ("Wait") to 24 and 40
    assert [p.accuracy for p in sorted(curves.points, key=lambda p: p.think_tokens)] == [0.0, 1.0, 1.0]
    [fit] = thinking_fits(curves.points)
    assert fit.slope > 0 and fit.n_points == 3
    # the Budget page draws it on a log2 axis of thinking tokens, with the slope and its CI
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("THINKTRACE_DB", store.url)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "budget.py"), default_timeout=60)
    at.query_params["sweep"], at.query_params["x"] = sid, "thinking"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["type"] == "log" and "thinking tokens" in spec["layout"]["xaxis"]["title"]["text"]
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "points per doubling of thinking" in shown and "3 budgets" in shown


# --- the Tree page reads a thinking trace ------------------------------------------------------------------

def test_the_tree_page_reads_a_thinking_trace_with_turns_failed_checks_and_search(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from store import Store
    from thinktrace import runner

    def checking(prompt, i, call):  # a trace with a failed check and its repair
        return thinker(prompt, i, call).replace(
            "He eats 2: 12 - 2 = 10.", "He eats 2: 12 - 2 = 11.\n\nCheck: 11+2=13: 13, not 12.\n\nWait, 12 - 2 = 10.")

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    lm = ScriptedLM(lambda p, i, c: checking(p, i, c) if "Wait" not in p.split("Answer:\n", 1)[1] else thinker(p, i, c))
    request = runner.RunRequest(strategy="cot", dataset="unit", model="scripted",
                                config=SearchConfig(max_new_tokens=64, think_tokens=30)).validate()
    run_id = runner.create_run(store, request, [PROBLEM], lm, None)
    runner.execute(store, run_id, lm, None)
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=30)
    at.run()
    at.query_params["run"], at.query_params["problem"] = run_id, "1"
    at.switch_page("pages/tree.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "**Thinking** —" in shown and "1 failed checks" in shown and "forced 'Wait'" in shown
    assert any(line.startswith(":red[Check") and "not 12" in line for line in shown.splitlines()) 
    assert any("*forced*" in str(c.value) and "**Wait**" in str(c.value) for c in at.caption)
    [find] = [t for t in at.text_input if t.label == "Find in the thinking"]
    find.set_value("not 12").run()
    assert any("1 of " in str(c.value) and "thoughts contain" in str(c.value) for c in at.caption)
