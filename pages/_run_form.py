"""The Run page's form: choose problems, model, backend, strategy and its knobs; show the same run as
a CLI command; start it in its own process. Which knobs a strategy shows, their help, choices and
ranges come from the strategy's declaration (reasoning.strategies) and the knobs' (reasoning.config)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import streamlit as st

from reasoning.backends import DEFAULT_CONCURRENCY, DEFAULT_MODEL, DEFAULT_VERIFIERS
from reasoning.config import Knob, SearchConfig, knobs
from reasoning.errors import UserError
from reasoning.strategies import IGNORES, NEEDS, lookup, names
from reasoning.verifiers import VERIFIERS
from pages.common import md_escape
from thinktrace.launch import RunSpec, app_folder, display_command, start_run


def knob_widget(knob: Knob, key: str, default=None):
    """The widget of one knob: a menu of its choices, a checkbox, or a number within its range; it
    starts at `default` (a preset's value) or the knob's own default."""
    label, help_ = knob.name.replace("_", " "), knob.hint or knob.help
    start = knob.default if default is None else default
    if knob.choices:
        options = list(knob.choices)
        index = options.index(start) if start in options else 0
        return st.selectbox(label, options, index=index, help=help_, key=key)
    if knob.type is bool:
        return st.checkbox(label, value=start, help=help_, key=key)
    if knob.type in (int, float):
        number = knob.type
        low, high = (None if bound is None else number(bound) for bound in (knob.low, knob.high))
        step = 1 if number is int else knob.step or 0.5
        return number(st.number_input(label, min_value=low, max_value=high, value=number(start), step=step,
                                      help=help_, key=key))
    return st.text_input(label, value=str(start), help=help_, key=key)


def policy_widget(knob: Knob, key: str, default=None) -> str:
    """compute_optimal's policy: a menu of the stored runnable policies (oracle ones cannot run)."""
    from pages.common import open_store
    from store.policies import list_policies

    rows = [r for r in list_policies(open_store()) if not r.oracle]
    if not rows:
        st.info("No policy yet: make a sweep with cot among its strategies and a verifier, then "
                "`python -m reasoning policy build SWEEP_ID`.")
        return ""
    labels = {r.id: f"{r.name} · sweep {(r.sweep_id or '-')[:8]} · {r.id[:8]}" for r in rows}
    return st.selectbox("policy", list(labels), format_func=labels.get, help=knob.hint or knob.help, key=key)


WIDGETS = {"policy": policy_widget}  # knobs whose values come from the store, not typed


def uploads_dir(url: str) -> Path:
    return app_folder(url) / ".thinktrace-uploads"


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
@st.cache_data(show_spinner=False)
def benchmark_subjects(name: str) -> list[str]:
    """The subjects of a shipped benchmark's problems (math500's seven), for the subset menu."""
    from reasoning.problems import load_problems

    return sorted({p.meta["subject"] for p in load_problems(name) if "subject" in p.meta})


@st.cache_data(show_spinner=False)
def benchmark_count(spec: str) -> int:
    from reasoning.problems import load_problems

    return len(load_problems(spec))


def benchmark_spec(name: str, levels: list[int], subject: str | None) -> str:
    """The dataset spec of a shipped benchmark's subset: `math500:level=4,level=5,subject=Algebra`."""
    from reasoning.problems import SHIPPED

    parts = [f"level={level}" for level in sorted(levels)] if "level" in SHIPPED[name].subsets else []
    if subject and "subject" in SHIPPED[name].subsets:
        parts.append(f"subject={subject}")
    return name + (":" + ",".join(parts) if parts else "")


def benchmark_form() -> tuple[str | None, int | None]:
    """A shipped benchmark (gsm8k, math500), a subset by level and subject where it has them."""
    from reasoning.problems import MATH_LEVELS, SHIPPED

    names = list(SHIPPED)
    c1, c2 = st.columns(2)
    name = c1.selectbox("Benchmark", names, key="benchmark", help="Shipped with ThinkTrace (reasoning/data/, MIT "
                        "licenses): gsm8k, the 1,319 GSM8K test problems; math500, the 500 MATH-500 problems with "
                        "their level (1-5, the difficulty) and subject. Answers are graded by the benchmark's own "
                        "extractor (GSM8K: #### first; MATH: \\boxed{} first).")
    levels, subject = [], None
    if "level" in SHIPPED[name].subsets:
        low, high = MATH_LEVELS
        levels = c2.multiselect("Levels", list(range(low, high + 1)), key=f"benchmark_levels_{name}",
                                help="Only these levels (none chosen: every level).")
    if "subject" in SHIPPED[name].subsets:
        subject = st.selectbox("Subject", ["every subject", *benchmark_subjects(name)], key=f"benchmark_subject_{name}")
        subject = None if subject == "every subject" else subject
    spec = benchmark_spec(name, levels, subject)
    count = benchmark_count(spec)
    limit = int(st.number_input(f"Problems (the first of {count}, in the benchmark's order)", min_value=1,
                                max_value=count, value=min(10, count), key=f"benchmark_limit_{spec}"))
    st.caption(f"`--dataset {spec}`")
    return spec, limit


ARC_SETS = {"arclab:test": "arclab:test: held-out compositions (lab-arc never saw them)",
            "arclab:train": "arclab:train: the compositions lab-arc trained on",
            "arc-agi": "arc-agi: ARC-AGI-1's 400 public evaluation tasks (shipped)",
            "arc": "arc:PATH: ARC JSON on this machine (a task file, a folder of them, or a JSONL)"}


@st.cache_data(ttl=30, show_spinner=False)
def task_count(spec: str) -> int:
    from reasoning.problems import load_problems

    return len(load_problems(spec))


def arc_form() -> tuple[str | None, int | None]:
    """Tasks with demonstrations (reasoning/fewshot.py): the arclab sets, ARC-AGI, or ARC JSON by path."""
    kind = st.radio("Task set", list(ARC_SETS), format_func=ARC_SETS.get, key="arc_set")
    if kind == "arc":
        path = st.text_input("Path to an ARC task file (.json), a folder of them, or a JSONL of tasks",
                             key="arc_path", placeholder="/data/arc/evaluation").strip()
        if not path:
            st.caption("Type a path on the machine this app runs on.")
            return None, None
        spec = f"arc:{path}"
    else:
        spec = kind
    try:
        count = task_count(spec)
    except UserError as exc:
        st.error(f"Cannot use {md_escape(spec)}: {md_escape(exc)}")
        return None, None
    limit = int(st.number_input(f"Tasks (the first of {count})", min_value=1, max_value=count, value=min(10, count),
                                key=f"arc_limit_{kind}"))
    st.caption(f"`--dataset {md_escape(spec)}` · answers are grids, graded cell for cell; `--model lab-arc` with "
               "`--strategy ttt` learns from each task's demonstrations before it answers")
    return spec, limit


def problems_form(url: str) -> tuple[str | None, int | None]:
    """(dataset spec, limit), or (None, None) with the reason shown."""
    source = st.radio("Problems", ["Built-in arithmetic", "Benchmark", "ARC tasks", "Upload JSONL", "Type a question"],
                      horizontal=True, key="source",
                      help="Benchmark: GSM8K or MATH-500 (by level and subject), shipped with ThinkTrace. ARC tasks: "
                           "demonstrations and a test input, answered with a grid (for --strategy ttt).")
    if source == "Benchmark":
        return benchmark_form()
    if source == "ARC tasks":
        return arc_form()
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
            st.error(f"Cannot use {md_escape(upload.name)}: {md_escape(exc)}")
            return None, None
        limit = int(st.number_input(f"Problems to use (of {count})", min_value=1, max_value=count, value=count,
                                    key="upload_limit"))
        st.caption(f"✓ {count} problems read from {md_escape(upload.name)}")
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


MODEL_CHOICES = {"lab (embedded reasoner, fast)": "lab", "lab-s (smaller reasoner)": "lab-s",
                 "lab-xs (smallest reasoner)": "lab-xs", "lab-think (embedded thinker)": "lab-think",
                 "lab-arc (ARC-like tasks, for ttt)": "lab-arc",
                 "smollm2 (embedded chat LLM)": "smollm2", "Hugging Face id or local folder": None}


def model_form() -> str:
    choice = st.radio("Model", list(MODEL_CHOICES), horizontal=True, key="model_kind",
                      help="The embedded models need no download. lab: the ~1M reasoner trained by this repo on "
                           "its arithmetic problems, with its own PRM (prm:lab); lab-think: the reasoner taught to "
                           "think first (<think>: checks its steps, repairs them; thinking budgets apply); smollm2: "
                           "SmolLM2-135M-Instruct, a real chat model (weak and slow on a CPU). A thinking model's "
                           "thinking comes on top of max new tokens (up to 4,096 unless max think tokens says).")
    if MODEL_CHOICES[choice]:
        return MODEL_CHOICES[choice]
    return st.text_input("Model id or folder", key="model_id", placeholder="Qwen/Qwen2.5-0.5B-Instruct").strip() or DEFAULT_MODEL


BACKEND_CHOICES = {"transformers": "this machine (transformers)", "vllm": "vLLM (GPU; pip install vllm==0.32.0)",
                   "openai": "an OpenAI-compatible server"}


def backend_form() -> tuple[str, dict, int | None]:
    """Where the model runs: here (default), vLLM, or a server (its URL), stored with the run; and
    how many problems are in flight (not stored: the results do not depend on it)."""
    options: dict = {}
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
            options = {**options, **({"model_params": int(size)} if size >= 1 else {})}
        default = DEFAULT_CONCURRENCY[backend]
        concurrency = st.number_input(
            "Problems in flight", min_value=1, max_value=4096, value=None, step=1, key="concurrency",
            placeholder=f"default: {default}" + (" (64 on a GPU)" if backend == "transformers" else ""),
            help="The same as `--concurrency`: this many problems advance together and their model and "
                 "verifier calls are merged into shared batches (faster on a CPU, and what a GPU needs). "
                 "The results do not depend on it.")
    return backend, options, None if concurrency is None else int(concurrency)


def verifier_form(strategy: str, model: str) -> str | None:
    use = lookup(strategy).verifier
    if use == IGNORES:
        return None
    needs = use == NEEDS
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


NO_PRESET = "none"


def preset_form() -> str | None:
    """A preset (reasoning.presets): its values become the knobs' starting values below."""
    from reasoning.presets import PRESETS

    options = [NO_PRESET, *PRESETS]
    choice = st.selectbox("Preset", options, key="preset", format_func=lambda name: (
        "none: ThinkTrace's defaults" if name == NO_PRESET else f"{name} — {PRESETS[name].help}"),
        help="Another project's settings as one name, as `--preset` on the command line: the knobs below start at "
             "its values, and one you change overrides it. search-and-learn: their system prompt in the model's "
             "chat template, \\boxed{} grading, 2048 tokens, beam search to EOS within 40 iterations, T=0.8, PRM "
             "score of the last step (what still differs: docs/search-and-learn.md).")
    return None if choice == NO_PRESET else choice


def strategy_form(preset: str | None = None) -> tuple[str, dict]:
    """The strategy and the values of the knobs it declares (those `run` has a flag for), starting at
    the preset's values where it sets them."""
    from reasoning.presets import preset_values

    menu = names()
    wanted = st.session_state.get("strategy", "self_consistency")
    strategy = st.selectbox("Strategy", menu, index=menu.index(wanted) if wanted in menu else 0,
                            format_func=lambda s: f"{s} — {lookup(s).help}", key="strategy")
    declared = knobs()
    shown = [declared[name] for name in lookup(strategy).knob_names if declared[name].cli]
    start = preset_values(preset)
    values = {}
    cols = st.columns(3)
    for i, knob in enumerate(shown):
        with cols[i % 3]:
            key = f"knob_{knob.name}" + (f"_{preset}" if preset and knob.name in start else "")
            values[knob.name] = WIDGETS.get(knob.name, knob_widget)(knob, key=key, default=start.get(knob.name))
    return strategy, values


def form(url: str) -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        dataset, limit = problems_form(url)
        model = model_form()
        backend, backend_options, concurrency = backend_form()
        preset = preset_form()
        strategy, values = strategy_form(preset)
        c1, c2, c3 = st.columns(3)
        verifier = None
        with c1:
            verifier = verifier_form(strategy, model)
        seed = int(c2.number_input("Seed", min_value=0, value=0, step=1, key="seed",
                                   help="Same seed, same problems and samples."))
        name = c3.text_input("Name (optional)", key="run_name")
    spec = None
    if dataset is not None:
        spec = RunSpec(strategy=strategy, dataset=dataset, model=model, verifier=verifier, limit=limit, seed=seed,
                       name=name.strip(), knobs=values, backend=backend, backend_options=backend_options,
                       concurrency=concurrency, preset=preset)
    with right:
        st.markdown("**The same run from a terminal**")
        if spec is None:
            st.caption("Choose the problems first.")
        else:
            st.code(display_command(spec, url, multiline=True), language="bash")
        problem = validate(strategy, model, verifier, values, backend, backend_options, preset)
        if problem:
            st.error(problem)  # about settings typed here, in this session: not data from elsewhere
        if st.button("Start run", icon=":material/play_arrow:", type="primary", disabled=spec is None or bool(problem), key="start"):
            launch = start_run(spec, url)
            st.session_state["watch"] = launch.run_id
            st.query_params["run"] = launch.run_id
            st.rerun()


def validate(strategy: str, model: str, verifier: str | None, values: dict, backend: str = "transformers",
             backend_options: dict | None = None, preset: str | None = None) -> str | None:
    """Check the settings as `run` will, before a process is spawned: a bad combination is one
    message, not a log."""
    from pages.common import open_store
    from reasoning.presets import preset_values
    from thinktrace.runner import RunRequest, prepare

    try:
        request = RunRequest(strategy=strategy, dataset="", model=model, verifier=verifier,
                             config=SearchConfig(**preset_values(preset, values)), backend=backend,
                             backend_options=backend_options or {}, preset=preset).validate()
        prepare(open_store(), request)  # compute_optimal: a policy for this model and verifier
    except UserError as exc:
        return str(exc)
    return None
