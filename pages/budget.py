"""Budget: what accuracy each strategy buys for its compute, with honest error bars.

Reads a sweep (or any runs) from the store, draws accuracy against samples, tokens or FLOPs with the
compute-optimal frontier, and tabulates the efficiency gain over best-of-N. The URL keeps the view:
`?sweep=ID` or `?runs=ID,ID`, plus `x=` and `by=`.
"""
from __future__ import annotations

import streamlit as st

from pages.common import md_escape, open_store, share_box, url_ref
from reasoning.budget import efficiency, frontier, thinking_fits
from reasoning.errors import UserError
from store import Store
from reasoning.policy import Policy
from store.policies import list_policies
from store.runs import list_runs
from store.sweeps import list_sweeps
from thinktrace.curves import load_curves, points_csv
from thinktrace.policy import compare
from thinktrace.scale import scale_what
from reasoning.lab import ladder
from viz.curves import budget_figure, group_label
from viz.policy import policy_figure
from viz.scale import scale_figure

SWEEP_COMMAND = ("python -m reasoning sweep --strategies self_consistency,best_of_n,beam_search --budgets 1,2,4,8 "
                 "--dataset arith:4 --limit 20")  # the lab pair: ~35 s on a 2-core CPU
SCALE_COMMAND = ("python -m reasoning sweep --model lab-s --strategies cot,best_of_n,beam_search --budgets 1,4,16 "
                 "--dataset arith:1-5 --limit 100\npython -m reasoning sweep --model lab --strategies cot --budgets 1 "
                 "--dataset arith:1-5 --limit 100")
X_AXES = {"samples": "samples N", "tokens": "tokens / problem", "prompt_tokens": "prompt tokens", "flops": "FLOPs",
          "seconds": "seconds", "thinking": "thinking tokens"}
FACETS = {"none": "none", "difficulty": "built-in difficulty", "pass1": "pass@1 bins"}


def _param(name: str, allowed) -> str | None:
    value = st.query_params.get(name)
    return value if value in allowed else None


def _default(key: str, value) -> None:
    """Seed a widget from the URL once; afterwards the widget owns its state."""
    if key not in st.session_state and value is not None:
        st.session_state[key] = value


# Curves take seconds on big sweeps, and a sweep's runs are only known once it is loaded, so they are
# cached for a few seconds rather than keyed on the runs' versions: a sweep still running gains points
# on the next reload after that.
@st.cache_data(ttl=10, show_spinner="Computing curves…", hash_funcs={Store: lambda store: store.url})
def _curves(store: Store, sweep_id: str | None, run_ids: tuple[str, ...], by: str | None):
    return load_curves(store, sweep_id=sweep_id, run_ids=list(run_ids) or None, by=by)


st.title("Budget")
st.caption("Accuracy against test-time compute. Shaded bands are 95% bootstrap intervals over problems (and over "
           "seeds, where runs of several seeds are averaged into one curve); dashed grey lines are oracle upper "
           "bounds, not achievable accuracy.")

store = open_store()
sweeps, runs = list_sweeps(store), list_runs(store)

if not sweeps and not runs:
    st.info(f"No sweeps yet. Run one from a terminal, then reload:\n\n```\n{SWEEP_COMMAND}\n```")
    st.stop()

sweep_ids = [s.id for s in sweeps]
run_by_id = {r.id: r for r in runs}
url_runs = [r for r in (st.query_params.get("runs") or "").split(",") if r and url_ref(r) and r in run_by_id]
wanted_sweep = st.query_params.get("sweep")
wanted_sweep = wanted_sweep and url_ref(wanted_sweep, "sweep")
url_sweep = next((s for s in sweep_ids if s.startswith(wanted_sweep)), None) if wanted_sweep else None
_default("budget_source", "runs" if (url_runs and not url_sweep) or not sweeps else None)
_default("budget_sweep", url_sweep)  # else the selectbox shows its first sweep: the newest
_default("budget_runs", url_runs or [r.id for r in runs[:1]] or None)  # the newest run, never an empty page
_default("budget_x", _param("x", X_AXES))
_default("budget_by", _param("by", FACETS))

left, mid, right = st.columns([2, 1, 1])
with left:
    source = st.radio("Show", ["sweep", "runs"], horizontal=True, key="budget_source",
                      format_func={"sweep": "a sweep", "runs": "chosen runs"}.get,
                      disabled=not sweeps)
    if source == "sweep" and sweeps:
        labels = {s.id: s.label() for s in sweeps}
        sweep_id = st.selectbox("Sweep", sweep_ids, key="budget_sweep", format_func=labels.get)
        run_ids: list[str] = []
    else:
        sweep_id = None
        run_ids = st.multiselect(
            "Runs", list(run_by_id), key="budget_runs",
            format_func=lambda rid: (f"{run_by_id[rid].name} · {run_by_id[rid].strategy} n={run_by_id[rid].n} · "
                                     f"{run_by_id[rid].status} · {rid[:8]}"))
with mid:
    x = st.radio("x axis", list(X_AXES), key="budget_x", format_func=X_AXES.get)
with right:
    facet = st.radio("Facets", list(FACETS), key="budget_by", format_func=FACETS.get)
by = None if facet == "none" else facet

st.query_params.clear()
if sweep_id:
    st.query_params["sweep"] = sweep_id
elif run_ids:
    st.query_params["runs"] = ",".join(run_ids)
st.query_params.update({"x": x, "by": facet})

if not sweep_id and not run_ids:
    st.info(f"Pick one or more runs, or make a sweep: `{SWEEP_COMMAND}`")
    st.stop()

try:
    curves = _curves(store, sweep_id, tuple(run_ids), by)
except UserError as exc:
    st.error(md_escape(exc))
    st.stop()

for note in curves.notes:
    st.warning(md_escape(note))
st.markdown(f"**{md_escape(curves.title)}** — {md_escape(curves.caption())}")
with st.expander("What the curves mean"):
    st.markdown("\n".join(f"- {line}" for line in curves.legend()))

best = frontier(curves.points, x)
fig = budget_figure(curves.points, x, frontier=best, by=by, title=curves.title, caption=curves.caption())
if x == "flops" and all(p.flops is None for p in curves.points):
    st.warning("The model's parameter count is unknown for these runs, so there is no FLOPs axis.")
if x == "prompt_tokens" and all(p.prompt_tokens_per_problem is None for p in curves.points):
    st.warning("These runs recorded no prompt tokens (runs made before they were counted, or a server without a "
               "local tokenizer).")
if x == "thinking" and all(p.think_tokens is None for p in curves.points):
    st.warning("These runs hold no thinking: the thinking axis needs a thinking model (e.g. `--model lab-think`), "
               "best as a budget_forcing sweep, whose budget is the thinking.")
st.plotly_chart(fig, key="budget_chart", width="stretch")
if x == "thinking":
    fits = thinking_fits(curves.points)
    st.markdown("**Accuracy against log2(thinking tokens)** (o1's plot: a straight line on this axis means "
                "accuracy grows log-linearly with thinking)\n\n" +
                "\n".join(f"- {md_escape(f.sentence())}" for f in fits) if fits else
                "No curve has thinking at two budgets yet: sweep `budget_forcing` over thinking budgets.")
share_box()

if x == "flops":
    st.subheader("Where the FLOPs go")
    st.caption("FLOPs = 2 × parameters × tokens per problem for the policy, plus the same for the verifier on the "
               "paths it scored (self_eval is the policy model itself; its prefix re-reads are not counted, so "
               "its share is a lower bound).")
    st.dataframe([{"curve": p.curve, "N": p.k, "group": group_label(by, p.group),
                   "policy FLOPs": p.flops - p.verifier_flops, "verifier FLOPs": p.verifier_flops,
                   "verifier share": p.verifier_flops / p.flops if p.flops else None}
                  for p in curves.points if p.flops is not None],
                 hide_index=True, width="stretch",
                 column_config={"verifier share": st.column_config.NumberColumn(format="percent"),
                                "policy FLOPs": st.column_config.NumberColumn(format="%.3e"),
                                "verifier FLOPs": st.column_config.NumberColumn(format="%.3e")})

st.subheader("Compute-optimal frontier")
st.caption("The best achievable strategy within each budget (upper bounds excluded): a cheaper strategy stays best "
           "until a larger budget beats it. On tokens and FLOPs, the points that no cheaper point matches.")
st.dataframe([{"group": group_label(by, s.point.group), f"budget ({X_AXES[x]})": s.budget, "best": s.point.curve,
               "at N": s.point.k, "tokens / problem": round(s.point.tokens_per_problem, 1),
               "accuracy": s.point.accuracy, "CI low": s.point.ci_low, "CI high": s.point.ci_high} for s in best],
             hide_index=True, width="stretch", key="budget_frontier",
             column_config={c: st.column_config.NumberColumn(format="percent")
                            for c in ("accuracy", "CI low", "CI high")})

gains = efficiency(curves.points)
st.subheader("Efficiency over best-of-N")
if gains:
    st.caption("The smallest budget at which each strategy reaches best-of-N's accuracy at its largest budget "
               "(point estimates: compare the intervals before trusting a gain).")
    st.dataframe([{"group": group_label(by, g.group), "strategy": g.curve, "matches at N": g.k,
                   "gain (samples)": g.gain_samples, "gain (tokens)": g.gain_tokens, "summary": g.sentence()}
                  for g in gains], hide_index=True, width="stretch", key="budget_efficiency",
                 column_config={c: st.column_config.NumberColumn(format="%.2gx")
                                for c in ("gain (samples)", "gain (tokens)")})
else:
    st.caption("Needs a sampling run (self_consistency or best_of_n) as the baseline.")


# ---------------------------------------------------------------------------------------------
# Compute-optimal policy (Snell et al. 2024): per predicted difficulty, the arm this sweep measured best

@st.cache_data(ttl=10, show_spinner="Testing the policy…", hash_funcs={Store: lambda store: store.url})
def _comparison(store: Store, policy_id: str, sweep_id: str):
    return compare(store, policy_id, sweep_id)


def policy_section(store: Store, sweep_id: str) -> None:
    st.subheader("Compute-optimal policy")
    st.caption("Snell et al. (2024): predict each question's difficulty with a cheap probe (the greedy chain's "
               "verifier score; never the gold answer), then give each difficulty bin the strategy and budget a sweep "
               "measured best there, so compute goes where it pays. Fitted on one sweep, tested on another "
               "(other problems, same settings).")
    rows = list_policies(store)
    if not rows:
        st.info("No policy yet. Fit one on a sweep that has a cot run and a verifier, then test it on a sweep with "
                f"another seed:\n\n```\npython -m reasoning policy build {sweep_id[:8]}\n"
                "python -m reasoning policy eval POLICY --sweep OTHER_SWEEP\n```")
        return
    runnable = [r for r in rows if not r.oracle]
    if not runnable:
        st.info(f"Only oracle policies so far: `python -m reasoning policy build {sweep_id[:8]}`")
        return
    by_id = {r.id: r for r in runnable}
    default = next((r.id for r in runnable if r.sweep_id != sweep_id), runnable[0].id)
    policy_id = st.selectbox("Policy", list(by_id), index=list(by_id).index(default), key="budget_policy",
                             format_func=lambda pid: (f"{by_id[pid].name} · fitted on sweep {(by_id[pid].sweep_id or '-')[:8]}"
                                                      f" · {pid[:8]}"))
    row = by_id[policy_id]
    policy = Policy.from_json(row.body)
    frontier_plans = policy.frontier()
    options = sorted({round(p.tokens) for p in frontier_plans})
    budget = options[0] if len(options) == 1 else st.select_slider(
        "Mean tokens per question (the probe's included)", options=options, key="budget_policy_tokens",
        value=options[len(options) // 2])
    plan = policy.plan(budget + 0.5)
    st.markdown(f"**Which bin gets what at {budget} tokens** (expected on the fit problems: "
                f"{100 * plan.accuracy:.1f}% at {plan.tokens:.0f} tokens per question)")
    st.dataframe([{"bin (1 = easiest)": b["bin"], "questions": b["share"],
                   "probe score at least": b["probe_at_least"], "gets": b["arm"], "accuracy there": b["accuracy"],
                   "tokens there": round(b["tokens"])} for b in policy.describe(plan)],
                 hide_index=True, width="stretch", key="budget_policy_bins",
                 column_config={c: st.column_config.NumberColumn(format="percent") for c in ("questions", "accuracy there")})
    if row.sweep_id == sweep_id:
        st.caption("This policy was fitted on this sweep's problems: choose a sweep with another seed above to test "
                   "it on problems it has not seen.")
        return
    try:
        result = _comparison(store, policy_id, sweep_id)
    except UserError as exc:
        st.warning(md_escape(exc))
        return
    oracle = next((r for r in rows if r.oracle and r.sweep_id == row.sweep_id), None)
    oracle_curve = []
    if oracle is not None:
        try:
            oracle_curve = _comparison(store, oracle.id, sweep_id).curve
        except UserError:
            oracle_curve = []
    fig = policy_figure(result.curve, result.fixed, oracle=oracle_curve, reference=result.reference,
                        title=f"Policy {row.name} on sweep {sweep_id[:8]} (held out)",
                        caption=f"{result.fixed[0].n_problems} problems · 95% bootstrap CIs over problems")
    st.plotly_chart(fig, key="budget_policy_chart", width="stretch")
    if result.reference is not None:
        ref = result.reference
        reach = (f"with **{result.reach_tokens:.0f}** tokens per question, **{result.reach_tokens / ref.tokens:.2f}x** "
                 f"its {ref.tokens:.0f}" if result.reach_tokens is not None else "at no budget tried")
        st.markdown(f"Weighted best-of-N's best here is {md_escape(ref.label)}: {100 * ref.accuracy:.1f}%. "
                    f"The policy reaches that accuracy {reach}.")
    st.dataframe([{"budget": p.label.split("@")[-1].strip(), "policy": p.accuracy, "policy CI": f"{100 * p.ci_low:.1f}–{100 * p.ci_high:.1f}",
                   "policy tokens": round(p.tokens), "best fixed within those tokens": b.label if b else "–",
                   "its accuracy": b.accuracy if b else None, "its tokens": round(b.tokens) if b else None}
                  for (p, _), (_, b) in zip(result.policy_points, result.best_fixed)],
                 hide_index=True, width="stretch", key="budget_policy_table",
                 column_config={c: st.column_config.NumberColumn(format="percent") for c in ("policy", "its accuracy")})


name = "thinktrace-budget"
cols = st.columns(3)
cols[0].download_button("Figure (HTML)", fig.to_html(include_plotlyjs=True), f"{name}.html", "text/html")
cols[1].download_button("Points (CSV)", points_csv(curves.points), f"{name}.csv", "text/csv")
try:
    import kaleido  # noqa: F401  (optional: PNG export needs it and a browser)

    cols[2].download_button("Figure (PNG)", fig.to_image(format="png", scale=2), f"{name}.png", "image/png")
except Exception:  # not installed, or no browser for it
    cols[2].caption("PNG: install `kaleido` (or use the HTML's camera button)")

if sweep_id:
    policy_section(store, sweep_id)


# ---------------------------------------------------------------------------------------------
# Scale what? (Snell et al. 2024): a smaller model searching against a larger one answering once


@st.cache_data(ttl=10, show_spinner="Matching FLOPs…", hash_funcs={Store: lambda store: store.url})
def _scale(store: Store, small_id: str, large_id: str):
    return scale_what(store, small_id, large_id)


def scale_section(store: Store, sweeps) -> None:
    st.subheader("Scale what? A bigger model, or more thinking with a smaller one")
    st.caption("At equal total FLOPs (pre-training once, 6·N·D, plus inference per question), for an expected "
               "load of questions: the smaller model spends the difference on its best test-time strategy, the larger "
               "answers greedily. R is the ratio of inference to pre-training tokens: few questions (small R) leave "
               "the smaller model much to spend. Above zero, test-time compute wins at that load.")
    try:
        ladder_models = {row["model"] for row in ladder()}
    except (OSError, KeyError, ValueError) as exc:  # a ladder model's files are missing or unreadable
        st.warning(md_escape(f"the lab ladder's pre-training records cannot be read: {exc}"))
        return
    usable = [s for s in sweeps if s.model in ladder_models]
    if len({s.model for s in usable}) < 2:
        st.info("Needs sweeps of two sizes of the lab ladder, the larger with cot among its strategies, e.g.\n\n```\n"
                f"{SCALE_COMMAND}\n```")
        return
    labels = {s.id: f"{s.model} · {s.label()}" for s in usable}
    by_model = sorted(usable, key=lambda s: [row["model"] for row in ladder()].index(s.model))
    c1, c2 = st.columns(2)
    small_id = c1.selectbox("Smaller model's sweep", [s.id for s in by_model], format_func=labels.get, key="scale_small")
    large_id = c2.selectbox("Larger model's sweep", [s.id for s in by_model[::-1]], format_func=labels.get,
                            key="scale_large")
    try:
        result = _scale(store, small_id, large_id)
    except UserError as exc:
        st.warning(md_escape(exc))
        return
    for note in result.notes:
        st.warning(md_escape(note))
    fig = scale_figure(result.exchanges, title=f"{result.small.name} + test-time compute vs {result.large.name} greedy",
                       caption=(f"pre-training {result.small.pretrain_flops:.2e} vs {result.large.pretrain_flops:.2e} FLOPs "
                                f"· filled markers: 95% intervals apart"))
    st.plotly_chart(fig, key="budget_scale_chart", width="stretch")
    st.dataframe([{"difficulty": e.group, "R": e.ratio, "questions": round(e.queries),
                   "smaller model's pick": f"{e.small.curve} k={e.small.k}" if e.small else "–",
                   "its accuracy": e.small.accuracy if e.small else None, "larger greedy": e.large.accuracy,
                   "gain (points)": e.gain, "apart": e.significant,
                   "runs": f"{(e.small.run_id or '')[:8] if e.small else '–'} / {(e.large.run_id or '')[:8]}"}
                  for e in result.exchanges], hide_index=True, width="stretch", key="budget_scale_table",
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("its accuracy", "larger greedy")})


scale_section(store, sweeps)

from pages._ttt_section import ttt_section  # noqa: E402  (test-time training, issue 19: its own module)

ttt_section(store, curves.run_ids)
