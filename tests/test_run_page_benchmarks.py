"""The Run page's form offers the shipped benchmarks (math500 by level and subject) and presets, and
its command repeats what it shows."""
from __future__ import annotations

from tests.test_app import empty_db, open_page  # noqa: F401 (a fixture)


def test_the_run_form_offers_gsm8k_and_math500_subsets(empty_db):  # noqa: F811
    at = open_page("pages/run.py")
    at.radio(key="source").set_value("Benchmark").run()
    assert "--dataset gsm8k" in at.code[0].value and "--limit 10" in at.code[0].value
    at.selectbox(key="benchmark").set_value("math500").run()
    assert "--dataset math500 " in at.code[0].value
    at.multiselect(key="benchmark_levels_math500").set_value([4, 5]).run()
    at.selectbox(key="benchmark_subject_math500").set_value("Counting & Probability").run()
    command = at.code[0].value
    assert "'math500:level=4,level=5,subject=Counting & Probability'" in command, command
    assert "of 25" in at.number_input(key="benchmark_limit_math500:level=4,level=5,subject=Counting & Probability").label
    assert not at.exception and not at.button(key="start").disabled


def test_a_preset_sets_the_knobs_and_the_command_names_it_with_what_was_changed(empty_db):  # noqa: F811
    at = open_page("pages/run.py")
    at.selectbox(key="strategy").set_value("beam_search").run()
    at.selectbox(key="preset").set_value("search-and-learn").run()
    assert at.number_input(key="knob_max_steps_search-and-learn").value == 40
    assert at.checkbox(key="knob_last_step_to_eos_search-and-learn").value is True
    command = at.code[0].value
    assert "--preset search-and-learn" in command and "--max-steps" not in command  # the preset's own values
    at.number_input(key="knob_temperature_search-and-learn").set_value(0.5).run()
    assert "--temperature 0.5" in at.code[0].value and not at.button(key="start").disabled
    at.selectbox(key="preset").set_value("none").run()
    assert "--preset" not in at.code[0].value and at.number_input(key="knob_max_steps").value == 8
