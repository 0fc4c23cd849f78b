"""Learn: a guided, live lesson on System-2 reasoning with the lab pair (a ~1M-parameter reasoner and
its PRM, trained by this repo). Eight steps, each a button that runs in seconds on a laptop CPU:
greedy vs many samples, majority vote, a verifier and best-of-N (and where it is fooled), beam search
as a growing tree, accuracy vs budget by difficulty, thinking longer with the lab thinker, "scale
what?" on the ladder of lab reasoners (a smaller model searching vs a larger one answering once), and
learning at test time with lab-arc (training on a task's own demonstrations, live, then a vote over
augmented predictions: reasoning/lab/ttt_lesson.py).

The lab pair is tiny, so it runs in this process behind `st.cache_resource`; torch is imported only
inside the lesson functions, never when the app or another page loads.
"""
from __future__ import annotations

import streamlit as st

from pages.common import md_escape
from reasoning.config import SearchConfig

N_SAMPLES = 16
TEMPERATURE = SearchConfig.temperature  # the CLI's default; the recorded budget samples use it too
PAGES = {"run": ("pages/run.py", "Run page", "▶️"), "tree": ("pages/tree.py", "Tree page", "🌳"),
         "budget": ("pages/budget.py", "Budget page", "📈")}


@st.cache_resource(show_spinner="Loading the lab reasoner and PRM…")
def lab_pair():
    from reasoning.lab.evaluate import load_pair

    return load_pair()


@st.cache_data(show_spinner=False)
def problem_of(level: int, index: int):
    from reasoning.problems import load_problems

    return load_problems(f"arith:{level}", limit=index + 1)[index]


def link(page: str, why: str) -> None:
    """A link to a full page, when the app registers it (the lesson also runs on its own)."""
    path, label, icon = PAGES[page]
    try:
        st.page_link(path, label=f"{label}: {why}", icon=icon)
    except Exception:  # page not in this app's navigation (e.g. the page run alone)
        st.caption(f"{label}: {why}")


def show_path(steps: list[str], scores: list[float] | None = None, truth: list[bool] | None = None,
              checks: list[float] | None = None) -> None:
    lines = []
    for i, step in enumerate(steps):
        tags = []
        if scores:
            tags.append(f"PRM {scores[i]:.2f}")
        if checks:
            tags.append(f"arithmetic {checks[i]:.2f}")
        if truth:
            tags.append("✓" if truth[i] else "✗")
        lines.append(f"{i + 1}. {md_escape(step)}" + (f"  `{' · '.join(tags)}`" if tags else ""))
    st.markdown("\n".join(lines) or "_(empty)_")


def lesson_samples(level: int, index: int, seed: int):
    """Greedy + N samples of the chosen problem, cached in the session for the next lessons."""
    from reasoning.lab.lesson import attempts

    lm, prm = lab_pair()
    problem = problem_of(level, index)
    [greedy] = attempts(lm, prm, problem, 1, 0.0, seed)
    st.session_state["learn"] = {"key": (level, index, seed), "greedy": greedy,
                                 "samples": attempts(lm, prm, problem, N_SAMPLES, TEMPERATURE, seed)}


st.title("Learn: thinking longer, step by step")
st.markdown(
    "A language model can spend more compute on a question **at test time**: write many answers, "
    "vote, let a verifier judge each step, or search a tree of steps. This lesson shows each idea live "
    "on the **lab pair**, a ~1M-parameter reasoner and a process reward model (PRM) that ThinkTrace "
    "trains on its own arithmetic word problems (`python -m reasoning lab train`). The reasoner is "
    "deliberately small: right most of the time on one-step problems, often wrong on five-step ones."
)

left, mid, right = st.columns([1, 1, 1])
level = left.select_slider("Difficulty (operations)", options=[1, 2, 3, 4, 5], value=4, key="learn_level")
# Level 4, problem 2 by default: greedy and the vote are wrong, a few samples are right, and the verifier
# finds one of them (seed 0); other problems show the other cases (the verifier fooled, voting enough).
index = mid.number_input("Problem", min_value=1, max_value=200, value=2, key="learn_index") - 1
seed = right.number_input("Sampling seed", min_value=0, value=0, key="learn_seed")
problem = problem_of(level, index)
st.info(f"**Question.** {md_escape(problem.question)}  \n**Gold answer:** {problem.answer}")
state = st.session_state.get("learn")
if state and state["key"] != (level, index, seed):
    state = None

# --- 1 -----------------------------------------------------------------------------------------------
st.header("1 · One greedy answer vs many samples")
st.markdown(f"Greedy decoding takes the most likely token every time: one path, one answer. Sampling at "
            f"temperature {TEMPERATURE} writes {N_SAMPLES} different paths. If *any* of them is right, "
            "the model *can* solve the problem; the question is how to find that path.")
if st.button(f"Answer greedily, then sample {N_SAMPLES} paths", key="learn_run1", type="primary"):
    with st.spinner("Thinking…"):
        lesson_samples(level, index, seed)
    state = st.session_state["learn"]
if state:
    greedy, samples = state["greedy"], state["samples"]
    right_count = sum(s.correct for s in samples)
    c1, c2, c3 = st.columns(3)
    c1.metric("Greedy answer", greedy.answer or "none", "right" if greedy.correct else "wrong",
              delta_color="normal" if greedy.correct else "inverse")
    c2.metric(f"Samples right", f"{right_count} / {N_SAMPLES}")
    c3.metric(f"pass@{N_SAMPLES} (some sample right)", "yes" if right_count else "no")
    with st.expander("The greedy path"):
        show_path(greedy.steps)
    st.dataframe([{"sample": i + 1, "answer": s.answer, "right": s.correct, "tokens": s.tokens,
                   "last step": s.steps[-1] if s.steps else ""} for i, s in enumerate(samples)],
                 hide_index=True, width="stretch")
    link("run", "run any strategy on many problems and store every step")

    # --- 2 -------------------------------------------------------------------------------------------
    from reasoning.lab.lesson import fooled, votes, winner

    st.header("2 · Majority vote (self-consistency)")
    st.markdown("Let the samples vote: the most frequent answer wins. Voting helps when right paths "
                "agree and wrong ones scatter. It does not help when the model's errors are systematic "
                "(most samples make the same slip), or when the right answer is rare: voting cannot use "
                "a right path that the majority does not share.")
    from viz.lesson import votes_figure

    st.plotly_chart(votes_figure(votes(samples)), key="learn_votes")
    maj, maj_ok = winner(samples)
    st.write(f"Majority answer: **{maj}** ({'right' if maj_ok else 'wrong'}); greedy was "
             f"{'right' if greedy.correct else 'wrong'}.")

    # --- 3 -------------------------------------------------------------------------------------------
    st.header("3 · A verifier and best-of-N")
    st.markdown("A process reward model scores every step: the probability that the path so far is still "
                "on a right track. *Weighted best-of-N* sums the last-step scores per answer, so a rare "
                "right answer with confident steps can beat a popular wrong one. The lab PRM has two learnt "
                "parts: a PRM that reads the whole path (is this the right operation on the right numbers?) "
                "and an arithmetic checker that recomputes each step's equation; a step's score is the PRM's "
                "times the checker's verdicts so far. Both are learnt, so they can be wrong: below, the "
                "scores sit next to an exact check of each step.")
    wb, wb_ok = winner(samples, weighted=True)
    c1, c2, c3 = st.columns(3)
    c1.metric("Greedy", "right" if greedy.correct else "wrong")
    c2.metric("Majority vote", f"{maj}", "right" if maj_ok else "wrong", delta_color="normal" if maj_ok else "inverse")
    c3.metric("Weighted best-of-N (PRM)", f"{wb}", "right" if wb_ok else "wrong",
              delta_color="normal" if wb_ok else "inverse")
    ranked = sorted(range(len(samples)), key=lambda i: -samples[i].score)
    st.dataframe([{"sample": i + 1, "answer": samples[i].answer, "right": samples[i].correct,
                   "PRM score (last step)": round(samples[i].score, 3),
                   "lowest step score": round(min(samples[i].prm), 3) if samples[i].prm else None}
                  for i in ranked], hide_index=True, width="stretch")
    top = samples[ranked[0]]
    st.markdown(f"**The PRM's favourite path** (sample {ranked[0] + 1}, {'right' if top.correct else 'wrong'}): "
                "PRM score per step, the checker's verdict on that step's arithmetic, ✓/✗ from the exact check")
    show_path(top.steps, top.prm, top.truth, top.checks)
    slipped = next((s for s in samples if s.checks and min(s.checks) < 0.5), None)
    if slipped:
        st.markdown(f"**A path the checker stopped** (sample {samples.index(slipped) + 1}): one wrong digit, and "
                    "every later step's score falls with it")
        show_path(slipped.steps, slipped.prm, slipped.truth, slipped.checks)
    misses = fooled(samples)
    st.subheader("Where the verifier is fooled")
    st.markdown("A verifier pays off only when it checks better than the model it judges. Alone, the lab "
                "PRM learnt the *size* of a result, not its digits (a result off by one scored lower than the "
                "right one in 56% of hand-made twins), and the reasoner's slips are mostly wrong digits, so "
                "best-of-N did no better than the vote. The checker reads each equation in a layout where "
                "digits line up and catches those slips. What still fools the pair: a number copied wrong "
                "from the question with right arithmetic on it (the checker sees a true equation), and the "
                "PRM's doubts about long paths (the model card has the numbers).")
    if misses:
        st.markdown(f"{len(misses)} steps where the PRM disagrees with the exact check (a wrong step scored "
                    "above 0.5, or a right one below):")
        st.dataframe(misses[:10], hide_index=True, width="stretch")
    else:
        st.markdown("On this problem the PRM agrees with the exact check on every step. Try a harder "
                    "level or another problem: on long problems it is confident about some wrong steps.")
    link("tree", "every stored path with its step scores, click by click")

    # --- 4 -------------------------------------------------------------------------------------------
    st.header("4 · Beam search: spend compute step by step")
    st.markdown("Instead of writing whole answers and judging them at the end, beam search writes **one "
                "step** for each of N candidates, lets the PRM score them, keeps the best N/M and expands "
                "each into M new steps. Compute goes to the promising branches while they grow.")
    b1, b2 = st.columns(2)
    beams = b1.select_slider("N (candidates per step)", options=[4, 8, 16], value=8, key="learn_beams")
    width = b2.select_slider("M (children per kept beam)", options=[2, 4], value=2, key="learn_width")
    if st.button("Run beam search", key="learn_run4"):
        from reasoning.lab.lesson import beam_tree

        lm, prm = lab_pair()
        with st.spinner("Searching…"):
            nodes, outcome = beam_tree(lm, prm, problem, n=beams, beam_width=width, temperature=TEMPERATURE,
                                       seed=seed)
        st.session_state["learn_tree"] = {"key": (level, index, seed), "nodes": nodes, "answer": outcome.answer}
    tree = st.session_state.get("learn_tree")
    if tree and tree["key"] == (level, index, seed):
        from reasoning.answers import is_equiv
        from viz.tree import tree_figure

        nodes = tree["nodes"]
        iterations = sorted({n.iteration for n in nodes if n.iteration is not None})
        shown = st.slider("Iteration", 0, max(iterations or [0]), max(iterations or [0]), key="learn_iter")
        upto = max([n.seq for n in nodes if n.iteration is None or n.iteration <= shown])
        st.plotly_chart(tree_figure(nodes, upto_seq=upto, gold=problem.answer,
                                    title=f"Beam search N={beams}, M={width}: colour = PRM step score"),
                        key="learn_tree_fig")
        ok = tree["answer"] is not None and is_equiv(tree["answer"], problem.answer)
        st.write(f"Beam search answer: **{tree['answer']}** ({'right' if ok else 'wrong'}), "
                 f"{sum(n.tokens for n in nodes)} generated tokens "
                 f"(the {N_SAMPLES} samples above used {sum(s.tokens for s in samples)}).")

# --- 5 -----------------------------------------------------------------------------------------------
st.header("5 · Accuracy vs budget, and the compute-optimal choice by difficulty")
st.markdown("One problem is an anecdote. Over many problems, how much does each extra sample buy? "
            "pass@k (dashed) is the ceiling: a perfect answer checker. It also counts right answers reached "
            "through wrong steps (two slips that cancel), which a step verifier rightly rejects: at level 5 "
            "that is most of the gap. Majority vote and weighted best-of-k "
            "with the PRM are what you can actually get. Which method is worth its compute depends on "
            "how hard the problem is (Snell et al., 2024).")
if st.button("Draw the curves", key="learn_run5"):
    from reasoning.lab.lesson import SAMPLES_FILE

    if not SAMPLES_FILE.is_file():
        st.error("No recorded samples: run `python bench/lab.py` to record them.")
    else:
        from reasoning.lab.lesson import best_method, budget_points
        from viz.lesson import budget_by_level_figure

        recorded, points = budget_points()
        st.plotly_chart(budget_by_level_figure(points), key="learn_budget")
        st.caption(f"From {recorded['n']} recorded samples (T={recorded['temperature']}) on each of the first "
                   f"{recorded['per_level']} built-in problems per level, written by the lab pair "
                   "(`python bench/lab.py` records them); curves by subsampling, 95% bootstrap CIs.")
        best = best_method(points)
        names = {"maj": "majority", "wbon": "weighted BoN"}
        st.markdown("**Compute-optimal choice** (best real method at each budget):")
        st.dataframe([{"level": g, **{f"k={k}": names[m] for k, m in sorted(row.items())}}
                      for g, row in sorted(best.items())], hide_index=True)
link("budget", "sweep strategies and budgets on your own runs, with the frontier")

# --- 6 -----------------------------------------------------------------------------------------------
st.header("6 · Thinking longer: one chain that checks itself")
st.markdown(
    "Everything above spends compute **in parallel**: more samples, more beams. o1-style models spend it "
    "**sequentially**: they think before answering, check their steps, notice a mistake (\"Wait, ...\") and "
    "repair it, and their accuracy grows with the thinking they are allowed. The **lab thinker** "
    "(`--model lab-think`) is the lab reasoner taught to do that: before it states a step's result it works "
    "the digits in the layout the PRM's checker computes in (least significant digit first; a quotient by "
    "short division), and when it is made to think longer it checks every step by the inverse operation and "
    "redoes the first step a check rejects. A thinking budget caps it (`--max-think-tokens`: the steps left "
    "are written without digit work) or forces it on (`--think-tokens`: its end of thinking becomes "
    "\"Wait\", which starts a pass of checks).")


@st.cache_resource(show_spinner="Loading the lab thinker…")
def lab_thinker():
    from reasoning.backends import load_model

    return load_model("lab-think")


check_again = st.checkbox("Then make it think longer: its end of thinking becomes \"Wait\" once (budget forcing)",
                          value=True, key="learn_check_again")
if st.button("Let the thinker think about this problem", key="learn_run6"):
    from reasoning.lab.lesson import think_trace

    with st.spinner("Thinking…"):
        st.session_state["learn_trace"] = ((level, index, check_again),
                                           think_trace(lab_thinker(), problem, check_again=check_again))
held = st.session_state.get("learn_trace")
if held and held[0] == (level, index, check_again):
    trace = held[1]
    c1, c2, c3 = st.columns(3)
    c1.metric("Answer", trace.answer or "none", "right" if trace.correct else "wrong",
              delta_color="normal" if trace.correct else "inverse")
    c2.metric("Thinking tokens", trace.think_tokens)
    c3.metric("Checks that failed", sum(t.failed for t in trace.thoughts))
    for thought in trace.thoughts:
        text = md_escape(thought.text)
        if thought.failed:
            st.markdown(f":red[{text}]  ← the check found the step wrong")
        elif thought.forced:
            st.markdown(f":orange[{text}]  ← \"Wait\" forced by the budget: a pass of checks")
        elif thought.turn:
            st.markdown(f":orange[{text}]  ← a turn: the step redone")
        elif thought.text.startswith("Check:"):
            st.markdown(f":gray[{text}]")
        else:
            st.markdown(text)
    st.markdown(f"**After thinking:** {md_escape(trace.answer_text)}")
    link("tree", "walk any stored thinking trace, with search and folding")

thinking_level = st.select_slider("Level for the thinking curve", options=[2, 3, 4, 5], value=3, key="learn_think_level")
if st.button("Draw accuracy against thinking tokens", key="learn_run6b"):
    from reasoning.budget import thinking_fits
    from reasoning.lab.lesson import THINKING_BUDGETS, thinking_points
    from viz.curves import budget_figure

    bar = st.progress(0.0, text="No thinking first…")
    steps = len(THINKING_BUDGETS) + 2
    done = []

    def advance(line: str) -> None:
        done.append(line)
        bar.progress(min(1.0, len(done) / steps), text=line)

    points, measured = thinking_points(lab_thinker(), thinking_level, 40, on_condition=advance)
    bar.empty()
    st.plotly_chart(budget_figure(points, "thinking", title=f"Lab thinker, level {thinking_level}: accuracy vs thinking",
                                  caption="40 built-in problems, greedy; 95% Wilson intervals"), key="learn_thinking")
    no_think = next(p for p in measured if p.condition == "no-think")
    st.markdown(f"No thinking: **{100 * no_think.accuracy:.0f}%**. " +
                " ".join(f.sentence() + "." for f in thinking_fits(points) if f.curve.startswith("thinking cut")))
    st.caption("Cut at T tokens, the thinker closes its thinking and finishes the remaining steps without "
               "digit work; left alone it works every step once. The model card says how far this tiny model "
               "gets and where it fails (reasoning/lab/MODEL_CARD.md).")
link("budget", "sweep budget_forcing over thinking budgets on your own runs: the o1 plot")

# --- 7 -----------------------------------------------------------------------------------------------
st.header("7 · Scale what? A bigger model, or more test-time compute")
st.markdown(
    "Is a FLOP better spent making the model bigger or letting a smaller one search longer? Snell et al. (2024) "
    "answered: it depends on the question's difficulty and on how many questions the model will serve. "
    "Pre-training is paid once (6 × parameters × training tokens); inference is paid per question. The lab "
    "ladder (`--model lab-xs`, `lab-s`, `lab`) is three reasoners trained on the same data for the same "
    "steps, only their size differs. Here the smaller one samples N paths and the PRM picks (weighted "
    "best-of-N), the larger one answers once, and both get the same total FLOPs for a given load: R is the "
    "ratio of inference to pre-training tokens. Few questions (small R) leave the smaller model the whole "
    "pre-training difference to spend on search; many questions leave it only the larger model's own cost "
    "per question.")
small_key = st.radio("Smaller model", ["lab-xs", "lab-s"], horizontal=True, key="learn_scale_small")


@st.cache_resource(show_spinner="Loading a ladder model…")
def ladder_lm(key: str):
    from reasoning.backends import load_model

    return load_model(key)


if st.button("Measure it (16 problems per level, 8 samples each)", key="learn_run7"):
    from reasoning.lab.lesson import ladder_exchange
    from viz.scale import scale_figure

    levels = (2, 3, 4, 5)
    bar = st.progress(0.0, text=f"Level {levels[0]}…")
    done = []

    def advance(level: int) -> None:
        done.append(level)
        bar.progress(len(done) / len(levels), text=f"Level {level} measured")

    _, prm = lab_pair()
    exchanges, small_points, greedy = ladder_exchange(ladder_lm(small_key), ladder_lm("lab"), prm, small_key, "lab",
                                                      levels=levels, on_level=advance)
    bar.empty()
    st.plotly_chart(scale_figure(exchanges, title=f"{small_key} + weighted best-of-N vs lab greedy, equal FLOPs",
                                 caption="16 built-in problems per level; filled markers: 95% intervals apart"),
                    key="learn_scale")
    for level in levels:
        mine = [e for e in exchanges if e.group == level and e.gain is not None]
        g = next(p for p in greedy if p.group == level)
        wins = [e.ratio for e in mine if e.gain > 0]
        verdict = (f"test-time compute wins up to R = {max(wins):g}" if wins else "the larger model wins at every load")
        st.markdown(f"- **Level {level}**: lab greedy {100 * g.accuracy:.0f}%; {verdict}.")
    st.caption("With 16 problems a level the intervals are wide: `python -m reasoning scale-what SMALL_SWEEP "
               "LARGE_SWEEP` does the same on stored sweeps of any size, and the Budget page draws it.")
link("budget", "the same exchange from your own sweeps of two ladder sizes")

# --- 8 -----------------------------------------------------------------------------------------------
st.header("8 · Learning at test time")
st.markdown(
    "Everything above spends test-time compute on *searching*: the model's weights never change. **Test-time "
    "training** (Akyürek et al., 2024) spends it on *learning*: before answering a task, fine-tune a copy of the "
    "model on the task's own demonstrations. Each demonstration in turn is held out and predicted from the others "
    "(leave-one-out), under transformations that keep the task's meaning (here: mirror the row, permute the "
    "colours); then predict the test output under the same transformations, map each prediction back, and vote. "
    "The model is **lab-arc** (`--model lab-arc`), a ~0.9M-parameter transformer trained on ARC-like rows of "
    "coloured cells; the tasks below are from `arclab:test`, compositions of two transformations it never saw "
    "together in training, so reading the demonstrations alone often fails. Measured on 200 of them (the model "
    "card): 13% right in context, 22.5% after 24 training steps (32.5% within ARC's two attempts) — a real gain, "
    "but smaller than the paper's, and uneven: some compositions are learnt, others not at all. Task 5 is one "
    "that training fixes; try others.")


@st.cache_resource(show_spinner="Loading lab-arc…")
def lab_arc():
    from reasoning.backends import load_model

    return load_model("lab-arc")


@st.cache_data(show_spinner=False)
def arc_task(index: int):
    from reasoning.lab.ttt_lesson import task

    return task(index)


from reasoning.fewshot import values_of  # noqa: E402  (pure: no torch)
from viz.grids import loss_figure, predictions, predictions_html, task_html, value_html, vote_figure, vote_table  # noqa: E402

ttt_index = int(st.number_input("Held-out task (arclab:test)", min_value=1, max_value=200, value=5,
                                key="learn_ttt_task")) - 1
arc = arc_task(ttt_index)
demos, test_input = values_of(arc.meta)
st.html(task_html(demos, test_input, gold=arc.answer))
with st.expander("The hidden program"):
    st.markdown(f"`{md_escape(arc.meta.get('program', '?'))}`: a composition ({md_escape(arc.meta.get('composition', '?'))}) "
                "held out from lab-arc's training.")
if st.button("Guess in context, then learn from the demonstrations", key="learn_run8", type="primary"):
    from reasoning.lab import ARC_DIR
    from reasoning.lab.ttt_lesson import PREDICTIONS, STEPS, in_context, solve

    if not (ARC_DIR / "config.json").is_file():
        st.error("The lab-arc model is not installed (reasoning/lab/models/arc): train it with "
                 "`python -m reasoning lab train --arc-only`.")
    else:
        lm = lab_arc()
        with st.spinner("Guessing from the demonstrations alone…"):
            guess = in_context(lm, arc)
        guess_slot = st.empty()  # shown while training runs; the results below repeat it
        with guess_slot.container():
            st.markdown("**In context** (greedy, no training): " + ("right" if guess.correct else "wrong"))
            st.html(value_html(guess.outcome.answer, 16, "#1a9850" if guess.correct else "#d73027", empty="no answer"))
        bar = st.progress(0.0, text=f"Training on the demonstrations: step 0 of {STEPS}")
        live_chart = st.empty()
        losses: list[float] = []

        def on_step(step: int, loss: float) -> None:
            losses.append(loss)
            bar.progress(step / STEPS, text=f"Training on the demonstrations: step {step} of {STEPS} · loss {loss:.3f}")
            live_chart.line_chart({"loss": losses}, height=220, x_label="step", y_label="loss")

        learnt = solve(lm, arc, STEPS, PREDICTIONS, on_step=on_step)
        bar.empty()
        live_chart.empty()
        guess_slot.empty()
        st.session_state["learn_ttt"] = {"key": ttt_index, "guess": guess, "learnt": learnt}
held = st.session_state.get("learn_ttt")
if held and held["key"] == ttt_index:
    guess, learnt = held["guess"], held["learnt"]
    attempts = learnt.outcome.meta.get("attempts") or []
    c1, c2, c3 = st.columns(3)

    def drawn(answer, right: bool) -> str:
        return value_html(answer, 16, "#1a9850" if right else "#d73027", empty="no answer")

    c1.metric("In context", "right" if guess.correct else "wrong")
    c1.html(drawn(guess.outcome.answer, guess.correct))
    c2.metric(f"After {learnt.training.get('steps', 0)} steps + vote of {len(learnt.nodes) - 1}",
              "right" if learnt.correct else "wrong")
    c2.html(drawn(learnt.outcome.answer, learnt.correct))
    c3.metric("ARC's two attempts (pass@2)", "right" if arc.answer in attempts else "wrong")
    c3.html("<br>".join(drawn(a, a == arc.answer) for a in attempts) or drawn(None, False))
    training = learnt.training
    st.plotly_chart(loss_figure(training.get("losses") or []), key="learn_ttt_loss")
    st.caption(f"{training.get('examples')} training tasks (each demonstration held out once, under each "
               f"transformation), {training.get('steps')} steps of {md_escape(training.get('method'))} fine-tuning, "
               f"{training.get('tokens', 0):,} tokens, {training.get('seconds', 0):.1f} s. The base model is restored "
               "afterwards: the next task starts from the same weights.")
    rows = predictions(learnt.nodes)
    table = vote_table(rows)
    if table:
        st.plotly_chart(vote_figure(table), key="learn_ttt_vote")
    st.html(predictions_html(rows, attempts))
    st.caption("Each prediction is made on the task transformed (mirrored, colours permuted), then mapped back by "
               "the inverse transformation: a model that learnt the task agrees with itself across transformations, "
               "a guess does not. The two most voted answers are ARC's two attempts.")
link("budget", "accuracy against TTT steps and against augmented predictions, from ttt runs")
