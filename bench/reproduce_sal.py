"""Reproduce search-and-learn's MATH-500 numbers for Llama-3.2-1B-Instruct with the RLHFlow 8B PRM (best-of-N,
beam search and DVTS), the whole pipeline on one CUDA GPU, and print ThinkTrace's table next to what
they published (docs/reproduce.md has the commands, the sources and what their publication gives).

    python bench/reproduce_sal.py --quick            # 10 problems, N = 4, seed 0: minutes on one GPU
    python bench/reproduce_sal.py                    # 500 problems, N = 4..256, seeds 0-4: GPU-days
    python bench/reproduce_sal.py --limit 100 --budgets 4,16 --seeds 0,1 --db sal.db

It makes one sweep with `--preset search-and-learn` (reasoning/presets.py): best_of_n at the largest N
(curves read naive, weighted and majority best-of-k for every smaller k from it), beam_search and dvts at
each N with beam width 4, every seed on the same problems; then prints accuracy with its 95% CI (over
problems and seeds) per method and N. On a machine without CUDA, or without the two models (the policy is
gated: accept its licence and `hf auth login`; or copy a Hugging Face cache that holds both), it exits
with code 2 and one line saying why, before loading anything.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POLICY = "meta-llama/Llama-3.2-1B-Instruct"
PRM = "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data"
STRATEGIES = ("best_of_n", "beam_search", "dvts")
BUDGETS, QUICK_BUDGETS = (4, 16, 64, 256), (4,)
QUICK_PROBLEMS = 10  # as their recipes' num_samples
BLOG = "https://huggingface.co/spaces/HuggingFaceH4/blogpost-scaling-test-time-compute"

# What search-and-learn published for this pair on MATH-500, per (method, N). Their README and recipes
# README give commands, not numbers; the blog post gives the results as figures (methods-maj-bon.png and
# the beam-search / DVTS plots), and no table of numbers could be found in their repository, README or
# blog text: those cells say "figure only". What the blog's text does state is kept in PUBLISHED_CLAIMS.
PUBLISHED: dict[tuple[str, int], str] = {}
PUBLISHED_CLAIMS = (
    "majority voting improves on greedy decoding but plateaus after about N = 64 (blog, 'Majority voting')",
    "weighted best-of-N consistently outperforms vanilla best-of-N, especially at larger N (blog, 'Best-of-N')",
    "best-of-N starts to plateau at N = 256, short of Llama 3.1 8B (blog, 'Best-of-N')",
)
METHODS = (("majority (self-consistency)", "maj", "best_of_n"), ("best-of-N naive", "bon", "best_of_n"),
           ("best-of-N weighted", "wbon", "best_of_n"), ("beam search", "direct", "beam_search"),
           ("DVTS", "direct", "dvts"))


def unavailable(backend: str) -> str | None:
    """Why this machine cannot run the pipeline (one line), or None."""
    try:
        import torch
    except ImportError:
        return "needs torch with CUDA (bash scripts/dev.sh setup)"
    if not torch.cuda.is_available():
        return ("needs a CUDA GPU and this machine has none: the numbers come from Llama-3.2-1B-Instruct with an "
                "8B PRM (docs/reproduce.md has the commands for a GPU machine)")
    if backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            return "--backend vllm needs vLLM (pip install vllm==0.32.0), or pass --backend transformers"
    from reasoning.backends import resolve
    from reasoning.errors import UserError

    for model in (POLICY, PRM):
        try:
            resolve(model)  # the local cache first, then the hub when it is reachable
        except UserError as exc:
            return str(exc)
    return None


def numbers(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"reproduce_sal: {flag} must be whole numbers separated by commas (got {text!r})") from None
    if not values:
        raise SystemExit(f"reproduce_sal: {flag} is empty")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PROBLEMS} problems, N = 4, seed 0")
    parser.add_argument("--limit", type=int, help="problems of MATH-500 (default: all 500; --quick: 10)")
    parser.add_argument("--budgets", help="comma list of N (default 4,16,64,256; --quick: 4)")
    parser.add_argument("--seeds", help="comma list of sampling seeds (default 0,1,2,3,4; --quick: 0)")
    parser.add_argument("--backend", choices=("vllm", "transformers"), help="default: vllm when installed")
    parser.add_argument("--db", default="reproduce_sal.db", help="where the runs are stored (default ./reproduce_sal.db)")
    parser.add_argument("--concurrency", type=int, help="problems in flight (default: the backend's)")
    args = parser.parse_args(argv)
    backend = args.backend or _default_backend()
    reason = unavailable(backend)
    if reason:
        print(f"reproduce_sal: {reason}", file=sys.stderr)
        return 2
    budgets = numbers(args.budgets, "--budgets") if args.budgets else list(QUICK_BUDGETS if args.quick else BUDGETS)
    seeds = numbers(args.seeds, "--seeds") if args.seeds else ([0] if args.quick else [0, 1, 2, 3, 4])
    limit = args.limit or (QUICK_PROBLEMS if args.quick else None)
    sweep_id = run(backend, budgets, seeds, limit, args.db, args.concurrency)
    print(table(args.db, sweep_id))
    return 0


def _default_backend() -> str:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "transformers"
    return "vllm"


def run(backend: str, budgets: list[int], seeds: list[int], limit: int | None, db: str,
        concurrency: int | None) -> str:
    """The sweep, as `python -m reasoning sweep --preset search-and-learn ...` makes it; resumable."""
    from reasoning.config import SearchConfig
    from reasoning.presets import preset_values
    from store import Store
    from thinktrace.sweep import run_sweep

    options = {"gpu_memory_utilization": 0.5} if backend == "vllm" else {}  # theirs: the PRM takes the rest
    name = f"search-and-learn reproduction ({'quick' if limit == QUICK_PROBLEMS else 'full'})"
    return run_sweep(Store.open(db), list(STRATEGIES), budgets, "math500", limit=limit, model=POLICY,
                     verifier=f"prm:{PRM}", cfg=SearchConfig(**preset_values("search-and-learn")), name=name,
                     backend=backend, backend_options=options, concurrency=concurrency,
                     seeds=seeds if len(seeds) > 1 else None, seed=seeds[0], preset="search-and-learn",
                     sweep_id=_stable_id(name, budgets, seeds, limit))


def _stable_id(name: str, budgets, seeds, limit) -> str:
    """The same request gets the same sweep id, so running the script again resumes it."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"thinktrace:{name}:{budgets}:{seeds}:{limit}"))


def table(db: str, sweep_id: str) -> str:
    """Ours next to theirs: accuracy [95% CI] per method and N."""
    from store import Store
    from thinktrace.curves import load_curves

    curves = load_curves(Store.open(db), sweep_id)
    rows = [("method", "N", "ThinkTrace (ours)", "search-and-learn (published)")]
    for label, estimator, strategy in METHODS:
        for p in sorted((p for p in curves.points if p.estimator == estimator and p.strategy == strategy),
                        key=lambda p: p.k):
            ours = f"{100 * p.accuracy:.1f}% [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"
            rows.append((label, str(p.k), ours, PUBLISHED.get((strategy, p.k), "figure only (docs/reproduce.md)")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([curves.caption(), *lines, "", f"published ({BLOG}):", *[f"  - {c}" for c in PUBLISHED_CLAIMS]])


if __name__ == "__main__":
    sys.exit(main())
