"""Verify a GPU machine in one short call: the transformers backend on CUDA with the smallest model this
project ships (the lab reasoner when it is present, else the embedded SmolLM2-135M), printing the
device, throughput and a correctness check. Exit code 0 only when every check passed.

Correctness: greedy decoding of a few built-in problems must give well-formed answers ("The answer
is N." extracted), and, on CUDA, the same answers as the CPU in float32 (the GPU run for this
comparison uses float32 too; throughput is measured in the GPU default, bfloat16). Without CUDA it
says so on one line and runs the same checks on the CPU.

    python bench/gpu_check.py [--model lab|smollm2] [--problems 3] [--n 16] [--max-new-tokens 48]
    python bench/gpu_check.py --math500 [--backend vllm] [--model Qwen/Qwen2.5-Math-1.5B-Instruct] \
        [--prm prm:Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B]

A short test-time training check follows (issue 19): `--strategy ttt` with LoRA (peft) on two arclab
tasks with lab-arc on the same device: it must train (the loss falls), predict, and leave the base
weights bit for bit as they were.

--math500 also measures the per-token costs of a MATH-500 sweep (bench/math500.py) with many problems
in flight: generated tokens/s of `complete_many` over 64 problems x 16 samples, and the PRM's scored
tokens/s; then prints the sweep's expected time from them. The numbers are for the models it ran:
pass a 1.5B policy and PRM (from the local Hugging Face cache) for the sweep docs/scale.md describes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from reasoning.answers import extract_answer  # noqa: E402
from reasoning.backends import load_model  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402


def smallest_model() -> str:
    from reasoning.backends import MODELS

    if "lab" in MODELS:
        from reasoning.lab import REASONER_DIR

        if (REASONER_DIR / "config.json").is_file():
            return "lab"
    return "smollm2"


def greedy_answers(lm, problems, max_new_tokens: int) -> list[tuple[str, str | None]]:
    rows = lm.complete([lm.prompt(p.question) for p in problems], n=1, max_new_tokens=max_new_tokens, temperature=0)
    return [(row[0].text, extract_answer(row[0].text).value) for row in rows]


def throughput(lm, problems, n: int, max_new_tokens: int) -> list[tuple[str, int, float]]:
    lm.complete([lm.prompt(problems[0].question)], n=1, max_new_tokens=4, temperature=0)  # warm-up
    if lm.device.startswith("cuda"):
        torch.cuda.synchronize()
    out = []
    for label, samples, temperature in (("greedy n=1", 1, 0.0), (f"sampled n={n}", n, 0.8)):
        started, tokens = time.perf_counter(), 0
        for i, problem in enumerate(problems):
            [row] = lm.complete([lm.prompt(problem.question)], n=samples, max_new_tokens=max_new_tokens,
                                temperature=temperature, seed=i)
            tokens += sum(c.n_tokens for c in row)
        if lm.device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append((label, tokens, time.perf_counter() - started))
    return out


def math500_costs(lm, prm, problems, n: int, max_new_tokens: int) -> tuple[float, float]:
    """(generated tokens/s, PRM scored tokens/s) with 64 problems in flight."""
    from reasoning.types import GenerationRequest

    requests = [GenerationRequest([lm.prompt(p.question)], n, max_new_tokens, 0.8, None, i)
                for i, p in enumerate(problems)]
    lm.complete_many(requests[:2])  # warm-up
    started = time.perf_counter()
    rows = lm.complete_many(requests)
    decode_wall = time.perf_counter() - started
    generated = sum(c.n_tokens for r in rows for row in r for c in row)
    items = [(p.question, [[s for s in c.text.split("\n\n") if s.strip()] for c in row], None)
             for p, [row] in zip(problems, rows)]
    scorer = getattr(prm, "prm", prm)  # the PRM itself, without the lab's arithmetic checker
    scorer.score_many(items[:2])
    before = scorer.stats["tokens"]
    started = time.perf_counter()
    scorer.score_many(items)
    prm_wall = time.perf_counter() - started
    return generated / decode_wall, (scorer.stats["tokens"] - before) / prm_wall


def ttt_check(device: str, tasks: int = 2) -> bool:
    """LoRA test-time training on `device`: loss falls, base weights unchanged, seconds per task."""
    import hashlib

    from reasoning.config import SearchConfig
    from reasoning.strategies import lookup
    from reasoning.tree import Tree

    lm = load_model("lab-arc", device=device)

    def digest() -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(lm.model.state_dict().items()):
            h.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()

    before, ok = digest(), True
    cfg = SearchConfig(n=4, ttt_steps=16, ttt_method="lora", ttt_lr=5e-3)
    for problem in load_problems("arclab:test", limit=tasks):
        tree = Tree(problem.question)
        started = time.perf_counter()
        outcome = lookup("ttt").search(problem, lm, None, cfg, tree)
        log = tree.root.meta["ttt"]
        falls = log["losses"][-1] < log["losses"][0]
        ok &= falls
        print(f"ttt {problem.key}: LoRA {log['trainable_params']:,} params, {log['examples']} examples, loss "
              f"{log['losses'][0]:.3f} -> {log['losses'][-1]:.3f} ({'falls' if falls else 'DOES NOT FALL'}), "
              f"answer {'right' if outcome.answer == problem.answer else 'wrong'}, "
              f"{time.perf_counter() - started:.2f} s on {lm.device}")
    same = digest() == before
    print(f"ttt base weights after training: {'unchanged' if same else 'CHANGED'}")
    return ok and same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: lab if trained, else smollm2")
    parser.add_argument("--dataset", default="arith:1")
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--math500", action="store_true", help="also measure the per-token costs of a MATH-500 sweep")
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--prm", default="prm:lab")
    args = parser.parse_args()
    model = args.model or smallest_model()
    problems = load_problems(args.dataset, limit=args.problems)
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}")
    if cuda:
        props = torch.cuda.get_device_properties(0)
        print(f"device: cuda:0 {props.name}, {props.total_memory / 2**30:.1f} GiB, {torch.cuda.device_count()} GPU(s)")
    else:
        print("no CUDA: torch sees no GPU; running the same checks on the CPU")
    device = "cuda" if cuda else "cpu"
    ok = True

    started = time.perf_counter()
    lm = load_model(model, device=device)
    print(f"model: {lm.name} ({lm.n_params / 1e6:.1f}M params) on {lm.device} in {lm.dtype}, "
          f"loaded in {time.perf_counter() - started:.1f} s")
    for label, tokens, wall in throughput(lm, problems, args.n, args.max_new_tokens):
        print(f"throughput {label:12} {tokens:6d} tokens {wall:7.2f} s {tokens / wall:8.1f} tokens/s")

    reference = load_model(model, device="cpu", dtype="float32")
    expected = greedy_answers(reference, problems, args.max_new_tokens)
    checked = load_model(model, device=device, dtype="float32") if cuda else reference
    got = greedy_answers(checked, problems, args.max_new_tokens) if cuda else expected
    for problem, (text, answer), (_, cpu_answer) in zip(problems, got, expected):
        well_formed = bool(text.strip()) and answer is not None
        same = answer == cpu_answer
        ok &= well_formed and same
        answers = f"cuda answer {answer}, cpu answer {cpu_answer}" if cuda else f"answer {answer}"
        print(f"check {problem.key}: gold {problem.answer}, {answers}: {'well-formed' if well_formed else 'MALFORMED'}"
              + ((", same as cpu" if same else ", DIFFERS FROM CPU") if cuda else ""))
    ok &= ttt_check(device)
    if args.math500:
        from math500 import print_table

        from reasoning.verifiers import load_verifier

        policy = load_model(model, device=device, backend=args.backend) if args.backend == "vllm" else lm
        prm = load_verifier(args.prm, policy)
        decode_tps, prm_tps = math500_costs(policy, prm, load_problems("arith:4", limit=64), 16, 256)
        where = torch.cuda.get_device_properties(0).name if cuda else "cpu"
        print(f"math500 costs: {policy.name} on {args.backend} generated {decode_tps:,.0f} tokens/s; "
              f"{prm.name} scored {prm_tps:,.0f} tokens/s ({where})")
        print_table(decode_tps, prm_tps, source=f"measured on {where} with {policy.name} and {prm.name}")
    print("gpu_check: OK" if ok else "gpu_check: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
