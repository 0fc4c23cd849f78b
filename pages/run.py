"""Run: choose problems, model, strategy and budget; start a run in its own process; watch it live."""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import streamlit as st

from pages.common import TREE_PAGE, duration, open_store, param, problem_label, share_box, short
from reasoning.backends import DEFAULT_MODEL, DEFAULT_VERIFIERS, check_backend
from reasoning.config import AGGREGATES, SELECT_RULES, SearchConfig
from reasoning.errors import UserError
from thinktrace.launch import RunSpec, child_state, display_command, last_error, log_path, resume_run, start_run, stop_run
from thinktrace.settings import read_only
from reasoning.strategies import STRATEGIES, check_strategy
from reasoning.verifiers import VERIFIERS, check_verifier_spec

# Which SearchConfig knobs matter to which strategy (missing fields are skipped, unknown strategies
# get the chain knobs). Common to all: seed, and the problems.
KNOBS = {
    "cot": ["max_new_tokens"],
    "self_consistency": ["n", "temperature", "max_new_tokens"],
    "best_of_n": ["n", "temperature", "max_new_tokens", "select", "aggregate"],
    "beam_search": ["n", "beam_width", "max_steps", "max_step_tokens", "lookahead", "temperature", "aggregate"],
    "dvts": ["n", "beam_width", "max_steps", "max_step_tokens", "lookahead", "temperature", "aggregate"],
    "mcts": ["expansions", "width", "c_puct", "max_steps", "max_step_tokens", "temperature", "aggregate"],
    "revise": ["n", "parallel", "temperature", "max_new_tokens"],
    "budget_forcing": ["think_tokens", "max_new_tokens"],
}
DEFAULT_KNOBS = ["n", "temperature", "max_new_tokens"]
HELP = {
    "n": "Budget: samples (chains) or beams.",
    "temperature": "Sampling temperature; 0 is greedy.",
    "max_new_tokens": "Token limit of one whole chain.",
    "select": "How the answer is picked: top-scored chain (naive), largest summed score per answer (weighted), or votes only (majority).",
    "aggregate": "One score per path from its step scores: last step, min, product or mean.",
    "beam_width": "M: children per kept beam (beam search keeps N/M beams; DVTS grows N/M subtrees).",
    "max_steps": "Depth limit: a step at this depth ends its path.",
    "max_step_tokens": "Token limit of one step.",
    "lookahead": "Extra greedy steps rolled out before scoring a candidate (0: none).",
    "expansions": "MCTS budget: number of leaf expansions.",
    "width": "MCTS: child steps sampled per expansion.",
    "c_puct": "MCTS exploration constant (higher explores more).",
    "parallel": "Revise: parallel chains of N/P attempts each.",
    "think_tokens": "Budget forcing: minimum generated tokens before the model may stop.",
    "top_p": "Nucleus sampling: keep the smallest token set with this much probability.",
}
CHOICES = {"select": SELECT_RULES, "aggregate": AGGREGATES}
POLL_SECONDS = 1.5


def cli_flags() -> set[str]:
    """The options `python -m reasoning run` accepts now (other engineers add knobs as they go)."""
    import typer

    from thinktrace import cli

    command = typer.main.get_command(cli.app)
    return {opt for p in command.commands["run"].params for opt in p.opts}


def knobs_of(strategy: str) -> list[str]:
    """The knobs listed above, plus any `--flag` the strategy's one-line help names (so a strategy
    added to the dispatch table shows its own settings without an edit here)."""
    listed = list(KNOBS.get(strategy, DEFAULT_KNOBS))
    named = [f.replace("-", "_") for f in re.findall(r"--([a-z][a-z0-9-]*)", STRATEGIES[strategy][2])]
    return listed + [k for k in named if k not in listed]


def knob_widget(name: str, default, key: str):
    label = name.replace("_", " ")
    help_ = HELP.get(name, f"SearchConfig.{name}")
    if name in CHOICES:
        options = list(CHOICES[name])
        return st.selectbox(label, options, index=options.index(default) if default in options else 0, help=help_, key=key)
    if isinstance(default, bool):
        return st.checkbox(label, value=default, help=help_, key=key)
    if isinstance(default, int):
        return int(st.number_input(label, min_value=0, value=default, step=1, help=help_, key=key))
    if isinstance(default, float):
        step = 0.1 if name in ("temperature", "top_p", "c_puct") else 0.5
        return float(st.number_input(label, min_value=0.0, value=default, step=step, help=help_, key=key))
    return st.text_input(label, value=str(default), help=help_, key=key)


def uploads_dir(url: str) -> Path:
    return log_path(url, "x").parent.parent / ".thinktrace-uploads"


def save_problem_file(url: str, name: str, data: bytes) -> Path:
    """Keep an uploaded or typed problem set next to the database, so the run (another process) can
    read it and a resume finds it again. Content-addressed: the same file is stored once."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-") or "problems"
    folder = uploads_dir(url)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}.jsonl"
    if not path.exists():
        path.write_bytes(data)
    return path


def check_problem_file(path: Path) -> int:
    from reasoning.problems import load_problems

    return len(load_problems(str(path)))


# ---------------------------------------------------------------- the form
def problems_form(url: str) -> tuple[str | None, int | None]:
    """(dataset spec, limit), or (None, None) with the reason shown."""
    source = st.radio("Problems", ["Built-in arithmetic", "Upload JSONL", "Type a question"], horizontal=True,
                      key="source")
    if source == "Built-in arithmetic":
        c1, c2 = st.columns(2)
        level = c1.select_slider("Difficulty (operations per problem)", options=[1, 2, 3, 4, 5], value=1,
                                 key="difficulty")
        limit = int(c2.number_input("Problems", min_value=1, max_value=500, value=3, key="limit",
                                    help="How many generated problems (same seed, same problems)."))
        return f"arith:{level}", limit
    if source == "Upload JSONL":
        upload = st.file_uploader("JSONL file: one problem per line, GSM8K shape (question, answer) or MATH "
                                  "shape (problem, answer or solution with \\boxed{})", type=["jsonl"], key="upload")
        if upload is None:
            st.caption("Waiting for a file.")
            return None, None
        path = save_problem_file(url, upload.name, upload.getvalue())
        try:
            count = check_problem_file(path)
        except UserError as exc:
            st.error(f"Cannot use {upload.name}: {exc}")
            return None, None
        limit = int(st.number_input(f"Problems to use (of {count})", min_value=1, max_value=count, value=count,
                                    key="upload_limit"))
        st.caption(f"✓ {count} problems read from {upload.name}")
        return str(path), limit
    question = st.text_area("Question", key="question", placeholder="A farmer has 12 cows and buys 5 more. How many cows?")
    gold = st.text_input("Gold answer (optional)", key="gold", help="Marks the answers right or wrong; without it "
                         "you still see every path, vote and score, and the run is not graded.")
    if not question.strip():
        st.caption("Type a question to start.")
        return None, None
    if not gold.strip():
        st.caption("No gold answer: the run will not be graded (accuracy shows –).")
    row = json.dumps({"question": question.strip(), "answer": gold.strip() or None}) + "\n"
    return str(save_problem_file(url, "typed", row.encode())), None


MODEL_CHOICES = {"lab (embedded reasoner, fast)": "lab", "smollm2 (embedded chat LLM)": "smollm2",
                 "Hugging Face id or local folder": None}


def model_form() -> str:
    choice = st.radio("Model", list(MODEL_CHOICES), horizontal=True, key="model_kind",
                      help="Both embedded models need no download. lab: the ~1M reasoner trained by this repo on "
                           "its arithmetic problems, with its own PRM (prm:lab); smollm2: SmolLM2-135M-Instruct, "
                           "a real chat model (weak and slow on a CPU).")
    if MODEL_CHOICES[choice]:
        return MODEL_CHOICES[choice]
    return st.text_input("Model id or folder", key="model_id", placeholder="Qwen/Qwen2.5-0.5B-Instruct").strip() or DEFAULT_MODEL


BACKEND_CHOICES = {"transformers": "this machine (transformers)", "vllm": "vLLM (GPU; pip install vllm==0.32.0)",
                   "openai": "an OpenAI-compatible server"}


def backend_form() -> tuple[str, dict]:
    """Where the model runs: here (default), vLLM, or a server (its URL). Stored with the run."""
    with st.expander("Backend: where the model runs (default: this machine)"):
        backend = st.radio("Run the model on", list(BACKEND_CHOICES), format_func=BACKEND_CHOICES.get,
                           horizontal=True, key="backend",
                           help="The same as `--backend` of the CLI; the server's API key comes from "
                                "$THINKTRACE_API_KEY or $OPENAI_API_KEY of the app's process, never from this page.")
        if backend == "openai":
            url = st.text_input("Server URL", key="base_url", placeholder="http://127.0.0.1:8000/v1").strip()
            size = st.number_input("Model parameters (optional)", min_value=0.0, value=0.0, step=1e9, format="%.3g",
                                   key="model_params", help="The served model's size, e.g. 7.6e9, for the FLOPs axes "
                                   "of curves: the server does not say it (lab and smollm2 count their own).")
            options = {"base_url": url} if url else {}
            return backend, {**options, **({"model_params": int(size)} if size >= 1 else {})}
    return backend, {}


def verifier_form(strategy: str, model: str) -> str | None:
    needs = STRATEGIES[strategy][1]
    own = DEFAULT_VERIFIERS.get(model)  # the lab reasoner comes with its PRM
    options = ([] if needs else ["none"]) + ([own] if own else []) + list(VERIFIERS) + ["other…"]
    default = 0 if own or not needs else options.index("self_eval")
    choice = st.selectbox("Verifier", options, index=default, key=f"verifier_{'needed' if needs else 'optional'}{'_' + model if own else ''}",
                          help="Scores every step in [0, 1]. prm:lab: the lab reasoner's process reward model with its arithmetic checker; self_eval: the model judges its own steps; "
                               "oracle: checks the gold answer (evaluation only: accuracy is an upper bound); "
                               "prm:NAME: a process reward model.")
    if choice == "other…":
        return st.text_input("Verifier spec", key="verifier_spec", placeholder="prm:lab").strip() or None
    return None if choice == "none" else choice


def strategy_form(flags: set[str]) -> tuple[str, dict]:
    names = list(STRATEGIES)
    wanted = st.session_state.get("strategy", "self_consistency")
    strategy = st.selectbox("Strategy", names, index=names.index(wanted) if wanted in names else 0,
                            format_func=lambda s: f"{s} — {STRATEGIES[s][2]}", key="strategy")
    defaults = {f.name: f.default for f in fields(SearchConfig)}
    shown = [k for k in knobs_of(strategy) if k in defaults and f"--{k.replace('_', '-')}" in flags]
    values = {}
    cols = st.columns(3)
    for i, name in enumerate(shown):
        with cols[i % 3]:
            values[name] = knob_widget(name, defaults[name], key=f"knob_{name}")
    return strategy, values


def form(url: str) -> None:
    flags = cli_flags()
    left, right = st.columns([3, 2], gap="large")
    with left:
        dataset, limit = problems_form(url)
        model = model_form()
        backend, backend_options = backend_form()
        strategy, values = strategy_form(flags)
        c1, c2, c3 = st.columns(3)
        verifier = None
        with c1:
            verifier = verifier_form(strategy, model)
        seed = int(c2.number_input("Seed", min_value=0, value=0, step=1, key="seed",
                                   help="Same seed, same problems and samples."))
        name = c3.text_input("Name (optional)", key="run_name")
    spec = None
    if dataset is not None:
        knobs = {k: v for k, v in values.items() if k not in ("n", "temperature", "max_new_tokens")}
        spec = RunSpec(strategy=strategy, dataset=dataset, model=model, verifier=verifier, limit=limit,
                       n=values.get("n"), seed=seed, temperature=values.get("temperature"),
                       max_new_tokens=values.get("max_new_tokens"), name=name.strip(), knobs=knobs,
                       backend=backend, backend_options=backend_options)
    with right:
        st.markdown("**The same run from a terminal**")
        if spec is None:
            st.caption("Choose the problems first.")
        else:
            st.code(display_command(spec, url, multiline=True), language="bash")
        problem = validate(strategy, verifier, values, backend, backend_options)
        if problem:
            st.error(problem)
        if st.button("Start run", icon=":material/play_arrow:", type="primary", disabled=spec is None or bool(problem), key="start"):
            launch = start_run(spec, url)
            st.session_state["watch"] = launch.run_id
            st.query_params["run"] = launch.run_id
            st.rerun()


def validate(strategy: str, verifier: str | None, values: dict, backend: str = "transformers",
             backend_options: dict | None = None) -> str | None:
    """Check the settings before a process is spawned: a bad combination is one message, not a log."""
    try:
        check_backend(backend, backend_options or {})
        check_strategy(strategy, verifier)
        check_verifier_spec(verifier)
        cfg = SearchConfig.from_dict(values)
        from reasoning import strategies

        check = getattr(strategies, "check_config", None)
        if check is not None:
            check(strategy, cfg)
        else:
            cfg.validate()
    except UserError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- live progress
# The monitor polls a run that is working: its reads are never cached (see pages/common.cached).
def watched_run(store) -> str | None:
    from store.runs import list_runs, resolve_run_id

    rid = param("run") or st.session_state.get("watch")
    if rid:
        try:
            return resolve_run_id(store, rid)  # a link may carry a unique prefix
        except UserError:
            return rid  # not in the store yet (still loading the model) or unknown: live() says which
    running = [r for r in list_runs(store) if r.status == "running"]
    return running[0].id if running else None


def live(store, run_id: str) -> None:
    from store.liveness import runs_here
    from store.models import as_utc
    from store.runs import current_problem, get_run, run_problems, run_summary, tree_nodes
    from viz.tree import tree_figure

    url = store.url
    state, code = child_state(run_id)
    try:
        s = run_summary(store, run_id)
    except UserError:
        s = None
    if s is None:
        if state == "running":
            st.info("Starting: loading the model. The run appears here as soon as it is ready.", icon=":material/hourglass_top:")
        else:
            line = last_error(log_path(url, run_id))
            if line:
                st.error(f"The run did not start: {line.removeprefix('error: ')}")
            else:
                st.error(f"No run with id {run_id!r} in this database. Pick one on the Tree page or start a new one.")
        return
    status = "running" if state == "running" and s.status != "done" else s.status
    st.subheader(f"{s.name}")
    now = datetime.now(timezone.utc)
    created, finished = as_utc(s.created_at), as_utc(s.finished_at)
    elapsed = ((finished or now) - created).total_seconds() if status in ("running", "done") else s.wall_seconds
    eta = None
    if status == "running" and s.problems_done:
        eta = elapsed / s.problems_done * (s.problems_total - s.problems_done)
    c = st.columns(5)
    c[0].metric("Status", status)
    c[1].metric("Problems", f"{s.problems_done} / {s.problems_total}")
    c[2].metric("Tokens", f"{s.tokens:,}")
    c[3].metric("Elapsed", duration(elapsed))
    c[4].metric("ETA", duration(eta) if eta is not None else ("–" if status != "done" else "done"))
    st.progress(s.problems_done / max(1, s.problems_total))
    if s.accuracy is not None:
        st.caption(f"Accuracy so far: {s.correct}/{s.graded} = {100 * s.accuracy:.0f}%"
                   + (" (oracle verifier: an upper bound)" if s.evaluation_only else ""))
    b1, b2, b3, _ = st.columns([1, 1, 1, 3])
    if read_only():  # a shared deployment: watch, never stop or resume
        if s.error and status in ("interrupted", "failed"):
            st.error(f"The run failed: {s.error}" if status == "failed" else s.error)
    elif status == "running":
        run = get_run(store, run_id)
        here, pid, host = runs_here(run), run.worker_pid, run.worker_host
        if not here:  # its process id means nothing on this machine: never signal it from here
            st.caption(f"Running on {host}: stop it there (or with Ctrl-C in its terminal).")
        elif b1.button("Stop", icon=":material/stop:", key="stop", help="The run stops as interrupted and can be resumed."):
            st.toast("Stopping…" if stop_run(pid) else "The run's process is already gone.")
    elif status in ("interrupted", "failed"):
        if s.error:
            st.error(f"The run failed: {s.error}" if status == "failed" else s.error)
        if b1.button("Resume", icon=":material/replay:", key="resume", help="Finished problems are kept; the rest are redone."):
            resume_run(run_id, url)
            st.session_state["_was_running"] = True
            time.sleep(0.3)
            st.rerun()
    if s.problems_done:
        (b1 if status == "done" else b2).page_link(TREE_PAGE, label="Open trees", icon=":material/account_tree:", query_params={"run": run_id})
    problem_id = current_problem(store, run_id)
    if problem_id is not None:
        rows = {p.problem_id: p for p in run_problems(store, run_id)}
        p = rows.get(problem_id)
        nodes = tree_nodes(store, run_id, problem_id)
        label = problem_label(p) if p else ""
        st.markdown(f"**{'Growing now' if status == 'running' and p and not p.done else 'Latest tree'}:** "
                    f"{short(label, 120)} ({len(nodes)} nodes)")
        st.plotly_chart(tree_figure(nodes, gold=p.gold if p else None), key=f"live_{run_id}", width="stretch")
    elif status == "running":
        st.caption("Waiting for the first step…")
    share_box({"run": run_id})
    was = st.session_state.get("_was_running")
    st.session_state["_was_running"] = status == "running"
    if was and status != "running":
        st.rerun(scope="app")  # stop polling: the run is over


st.title("Run")
store = open_store()
url = store.url  # what a spawned run gets as --db
if read_only():
    st.info("This app is shared read-only: runs cannot be started, stopped or resumed here. Progress of "
            "runs in this database shows below; start your own with `python -m reasoning run` or "
            "`bash scripts/dev.sh app` on your machine.", icon=":material/lock:")
else:
    with st.expander("New run", expanded=param("run") is None and "watch" not in st.session_state):
        form(url)
run_id = watched_run(store)
if run_id is None:
    st.info("No run in progress. " + ("Open a finished one on the Tree or Library page." if read_only() else
            "Set one up above and press **Start run**; its progress and its trees appear here while it works "
            "(closing the tab does not stop it)."))
else:
    state, _ = child_state(run_id)
    from store.runs import run_summary

    try:
        active = state == "running" or run_summary(store, run_id).status == "running"
    except UserError:
        active = False
    st.session_state.setdefault("_was_running", active)
    st.fragment(run_every=POLL_SECONDS if active else None)(live)(store, run_id)
