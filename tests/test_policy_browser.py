"""The Budget page's compute-optimal policy section in a real headless Chromium: a policy fitted on one
scripted sweep, tested on another; the page draws the comparison (policy, fixed strategies, oracle)
and the bins table follows the budget slider."""
from __future__ import annotations

import pytest
from helpers_browser import browser, new_page  # noqa: F401  (the fixtures)
from helpers_browser import expect, goto, needs_chromium, serve_app, settle

from store import Store

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from test_budget_page import DATASET, two_seed_lm
    from reasoning.verifiers import load_verifier
    from thinktrace.policy import build_policy
    from thinktrace.sweep import run_sweep

    db = tmp_path_factory.mktemp("policy-browser") / "thinktrace.db"
    store = Store(f"sqlite:///{db}")
    lm = two_seed_lm()
    verifier = load_verifier("self_eval", lm)
    fit_id, test_id = (run_sweep(store, ["cot", "best_of_n"], [1, 2, 4], DATASET, limit=4, seed=seed,
                                 verifier="self_eval", model="scripted", lm=lm, verifier_obj=verifier,
                                 progress=False, name=f"seed {seed}") for seed in (0, 1))
    build_policy(store, fit_id, name="two bins", n_bins=2)
    build_policy(store, fit_id, n_bins=2, oracle=True)
    with serve_app(db) as base:
        yield base, test_id


def test_the_policy_is_tested_on_a_held_out_sweep_in_the_browser(app, new_page):
    base, test_id = app
    page = new_page()
    goto(page, base, f"budget?sweep={test_id}")
    expect(page.get_by_text("Compute-optimal policy", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Weighted best-of-N's best here is")).to_be_visible(timeout=60_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)  # the budget curves + the policy's
    legend = page.locator(".js-plotly-plot").nth(1).locator(".legendtext")
    expect(legend.filter(has_text="compute-optimal policy")).to_have_count(1)
    expect(legend.filter(has_text="oracle-difficulty policy (upper bound)")).to_have_count(1)
    heading = page.get_by_text("Which bin gets what at")
    before = heading.inner_text()
    slider = page.get_by_role("slider").last
    slider.focus()
    slider.press("End")  # the largest budget on the policy's frontier
    settle(page)
    expect(heading).not_to_have_text(before, timeout=30_000)
