"""Tree: walk one problem's search tree. Click a node to read its path; replay the search in the order
it actually moved."""
from __future__ import annotations

import streamlit as st

from pages._tasks import answer_md, is_ttt_tree, show_node_text, show_task, show_ttt, show_value
from pages.common import (cached, empty_state, int_param, md_escape, num, open_store, pick_run, problem_label,
                          runs_version, share_box)
from reasoning.fewshot import is_task
from reasoning.thinking import failed_check
from store.runs import list_runs, run_problems, tree_nodes
from viz.tree import COLOR_BY, answer_table, is_chain, path_of, tree_figure


def pick_problem(run_id: str, problems: list):
    """Problem selectbox by readable label; `?problem=N` (1-based) picks one, and is kept in sync."""
    positions = [p.position for p in problems]
    key = f"problem_{run_id}"
    wanted = int_param("problem")
    if wanted is not None:
        if wanted - 1 not in positions:
            st.error(f"Problem {wanted} is not in this run (it has {len(problems)}): showing the first one.")
        elif st.session_state.get(f"_{key}_from_url") != wanted:
            st.session_state[key] = wanted - 1
            st.session_state[f"_{key}_from_url"] = wanted
    if st.session_state.get(key) not in positions:
        st.session_state[key] = positions[0]
    by_pos = {p.position: p for p in problems}
    pos = st.selectbox("Problem", positions, key=key, format_func=lambda i: problem_label(by_pos[i]))
    if int_param("problem") != pos + 1:
        st.query_params["problem"] = str(pos + 1)
    return by_pos[pos]


def clicked_seq(chart_key: str) -> int | None:
    """The node a click selected (the chart's selection state), if any."""
    event = st.session_state.get(chart_key)
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            return int(data)
    return None


STATUS_WORDS = {"selected": "on the chosen path", "pruned": "pruned", "kept": "kept", "terminal": "ends a path"}


def show_path(nodes, seq: int, gold: str | None, task: bool = False) -> None:
    path = path_of(nodes, seq)
    if not path:
        st.info("Click a node in the tree to read the path that leads to it.")
        return
    leaf = path[-1]
    st.markdown(f"#### Path to node #{leaf.seq}")
    if leaf.answer is not None or leaf.status == "terminal":
        verdict = {True: ":green[**✓ right**]", False: ":red[**✗ wrong**]", None: "no gold answer"}[leaf.correct]
        answer = md_escape(leaf.answer) if leaf.answer is not None else "*(no answer found)*"
        if task:
            answer = answer_md(leaf.answer) if leaf.answer is not None else answer
        st.markdown(f"This path answers **{answer}** — {verdict}"
                    + (f" (gold **{answer_md(gold) if task else md_escape(gold)}**)" if gold is not None else ""))
        if task and leaf.answer is not None:
            show_value(leaf.answer, outline=leaf.correct)
            if (leaf.meta or {}).get("augmentation_name"):
                st.caption(f"Predicted on the task under **{md_escape(leaf.meta['augmentation_name'])}**, then mapped "
                           "back; the step below is what the model wrote on the transformed task.")
    thought_nodes = [n for n in path[1:] if n.meta.get("phase") == "think"]
    if thought_nodes:
        show_thinking(thought_nodes, leaf)
    for node in path[1:]:
        if node.meta.get("phase") == "think":
            continue
        with st.container(border=True):
            st.caption(f"Step {node.depth} · score {num(node.score)} · path score {num(node.path_score)} · "
                       f"{node.tokens} tokens · logprob {num(node.logprob)} · "
                       f"{md_escape(STATUS_WORDS.get(node.status, node.status))}")
            if not (task and show_node_text(node.text)):
                st.markdown(md_escape(node.text) or "*(empty step)*")
    if len(path) == 1:
        st.caption("This is the root: it holds the question. Click a step below it.")


COMPACT_FROM = 12  # thoughts: a longer trace is shown one line per thought, folded


def show_thinking(thoughts, leaf) -> None:
    """A thinking trace: its numbers (thoughts, tokens, turns, failed checks, forced waits, a cut), a
    search box, and the thoughts with their turns marked and failed checks in red; a long trace is
    folded and compact."""
    turns = [n for n in thoughts if n.meta.get("turn")]
    failed = [n for n in thoughts if failed_check(n.text)]
    forced = [n for n in thoughts if n.meta.get("forced")]
    tokens = sum(n.tokens for n in thoughts)
    facts = [f"{len(thoughts)} thoughts", f"{tokens} thinking tokens", f"{len(turns)} turns"]
    facts += [f"{len(failed)} failed checks"] if failed else []
    facts += [f"{len(forced)} forced 'Wait'"] if forced else []
    facts += ["cut by the thinking budget"] if any(n.meta.get("cut") for n in thoughts) else []
    facts += ["no thinking (empty block)"] if leaf.meta.get("no_think") else []
    st.markdown("**Thinking** — " + " · ".join(facts))
    query = st.text_input("Find in the thinking", key=f"think_find_{leaf.seq}", placeholder="e.g. Wait, not 97").strip()
    shown = [n for n in thoughts if query.lower() in n.text.lower()] if query else thoughts
    if query:
        st.caption(f"{len(shown)} of {len(thoughts)} thoughts contain “{md_escape(query)}”.")
    compact = len(thoughts) > COMPACT_FROM
    with st.expander(f"The path of thought ({len(shown)} shown)", expanded=not compact or bool(query)):
        for i, node in enumerate(shown):
            marks = [f"**{md_escape(node.meta['turn'])}**" if node.meta.get("turn") else "",
                     "*forced*" if node.meta.get("forced") else "", "*cut here*" if node.meta.get("cut") else ""]
            head = f"`{thoughts.index(node) + 1}` · {node.tokens} tok " + " ".join(m for m in marks if m)
            text = md_escape(node.text) or "*(empty)*"
            if failed_check(node.text):
                text = f":red[{text}]"
            elif node.meta.get("turn"):
                text = f":orange[{text}]"
            if compact:
                st.markdown(f"{head} — {text}")
            else:
                with st.container(border=True):
                    st.caption(head)
                    st.markdown(text)


st.title("Tree")
store = open_store()
runs = list_runs(store)
if not runs:
    empty_state("No runs yet, so there is no tree to walk. Start one on the Run page (or from the Home page's "
                "demo button); every step of it lands here.")
    st.stop()
arrived = dict(st.query_params) != st.session_state.get("_tree_url")  # before the pickers write to it
top_left, top_right = st.columns([2, 3])
with top_left:
    run = pick_run(store, runs)
# Switching run or problem by hand drops the parts of the link that belonged to the previous view; a
# link that just arrived (the URL differs from what this page last wrote) is honoured whole.
previous = st.session_state.get("_tree_view")
if previous is not None and not arrived and previous[0] != run.id:
    st.query_params.pop("problem", None)
    st.query_params.pop("node", None)
problems = cached(run_problems, store, run.id, version=runs_version(run))
if not problems:
    st.info("This run has no problems recorded.")
    st.stop()
with top_right:
    problem = pick_problem(run.id, problems)
# A finished problem's tree is final: cached for good; a growing one is read on every rerun.
nodes = cached(tree_nodes, store, run.id, problem.problem_id, version=True if problem.done else None)
task = is_task(problem)
if task:
    show_task(problem)
else:
    st.markdown(f"**Question:** {md_escape(problem.question)}")
if not nodes:
    st.info("No steps stored for this problem yet." + (" The run is still working: watch it on the Run page."
                                                         if run.status == "running" else ""))
    st.stop()
verdict = {True: "✓ right", False: "✗ wrong", None: "ungraded"}[problem.correct] if problem.done else "not finished yet"
st.caption(f"{md_escape(run.strategy)} · n={md_escape(run.n)} · verifier {md_escape(run.verifier or 'none')} · "
           f"{len(nodes)} nodes · run answer "
           f"**{answer_md(problem.answer) if task else md_escape(problem.answer) if problem.answer is not None else '–'}** "
           f"vs gold **{answer_md(problem.gold) if task else md_escape(problem.gold) if problem.gold is not None else '–'}** "
           f"· {verdict}")
if "choice" in nodes[0].meta:  # compute_optimal: what the probe said and what the policy chose
    root = nodes[0].meta
    score = root.get("probe_score")
    st.info(f"**Compute-optimal policy** {md_escape(str(root.get('policy', ''))[:8])}: the probe (the greedy chain, "
            f"marked *probe*) scored {num(score)} → predicted difficulty bin **{md_escape(root.get('bin'))}** of "
            f"{md_escape(root.get('bins'))} (1 = easiest) → **{md_escape(root['choice'])}** at a mean budget of "
            f"{md_escape(root.get('budget'))} tokens.")

if previous is not None and not arrived and previous != (run.id, problem.position):
    st.query_params.pop("node", None)
st.session_state["_tree_view"] = (run.id, problem.position)
chart_key = f"tree_{run.id}_{problem.position}"
controls = st.columns([2, 3])
color_by = controls[0].radio("Colour", list(COLOR_BY), format_func=COLOR_BY.get, horizontal=True, key="color_by")
last_seq = nodes[-1].seq
upto = last_seq
if last_seq > 0:
    upto = controls[1].slider("Replay: nodes in creation order", 0, last_seq, last_seq, key=f"replay_{chart_key}",
                              help="Slide left to see the tree as it was after each step the search took.")

seq = None if arrived and int_param("node") is not None else clicked_seq(chart_key)
if seq is None:
    seq = int_param("node")
    if seq is not None and seq not in {n.seq for n in nodes}:
        st.error(f"Node {seq} is not in this tree (it has {len(nodes)} nodes): showing the chosen path.")
        seq = None
if seq is None:
    seq = problem.node_seq if problem.node_seq is not None else None
if seq is not None and st.query_params.get("node") != str(seq):
    st.query_params["node"] = str(seq)

st.session_state["_tree_url"] = dict(st.query_params)

ttt = is_ttt_tree(nodes)
chain = is_chain(nodes) and not ttt  # a ttt tree's vote is shown below, by augmentation
left, right = st.columns([3, 2], gap="medium")
with left:
    fig = tree_figure(nodes, color_by=color_by, selected_seq=seq, upto_seq=upto, gold=problem.gold)
    st.plotly_chart(fig, key=chart_key, on_select="rerun", selection_mode="points", width="stretch",
                    config={"scrollZoom": True, "displaylogo": False})
    st.caption(f"Colour: {COLOR_BY[color_by]} (grey: no value stored; certainty and token confidence need "
               "a backend that returns token log-probabilities). ◆ chosen path · ★ right answer · ▼ wrong answer · "
               "✕ pruned. Click a node to read its path; scroll to zoom, drag to pan.")
    share_box()
with right:
    if chain:
        table = answer_table(nodes)
        if table:
            st.markdown("#### Votes")
            st.dataframe(
                [{"answer": r["answer"], "votes": r["votes"],
                  "mean score": "–" if r["mean_score"] is None else f"{r['mean_score']:.2f}",
                  "right": {True: "✓", False: "✗", None: "?"}[r["correct"]], "chosen": "◆" if r["chosen"] else ""}
                 for r in table],
                hide_index=True, width="stretch",
            )
    if seq is None:
        st.info("Click a node in the tree to read the path that leads to it.")
    else:
        show_path(nodes, seq, problem.gold, task)
if ttt:
    show_ttt(nodes, problem.result_meta if problem.done else {}, key=chart_key)
