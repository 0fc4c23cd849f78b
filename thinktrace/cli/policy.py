"""`policy build|list|show|eval`: compute-optimal policies fitted on stored sweeps (thinktrace/policy.py).
`--json` keys are stable: build {id, seconds, policy}, list [summary], show {summary + edges, shares,
plans}, eval {policy, fixed, best_fixed, reference, reach_tokens}."""
from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import typer

from thinktrace.cli.options import DbOption, JsonOption, positive_list, print_json, whole

policy_app = typer.Typer(help="Compute-optimal policies: per predicted difficulty, the strategy a sweep measured best.",
                         no_args_is_help=True)


def _budgets(text: Optional[str]) -> list[float] | None:
    return None if text is None else positive_list(text, "--budgets", "200,400,800")


@policy_app.command("build")
def build(sweep_id: str = typer.Argument(..., help="The sweep (id or prefix) to fit on: it needs a cot run scored by a verifier."),
          name: str = typer.Option("", "--name", help="A label for the policy."),
          bins: int = typer.Option(4, "--bins", parser=whole, help="Difficulty bins (quantiles of the probe's score)."),
          oracle: bool = typer.Option(False, "--oracle", help="Bin by the model's true pass@1 (reads gold answers): an upper bound, not runnable."),
          db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """Fit a policy on a sweep and store it; prints its id."""
    from store import Store
    from thinktrace.policy import build_policy

    store = Store.open(db)
    policy_id, policy, seconds = build_policy(store, sweep_id, name=name, n_bins=bins, oracle=oracle)
    if as_json:
        print_json({"id": policy_id, "seconds": seconds, "policy": policy.to_json()})
        return
    typer.echo(policy_id)


@policy_app.command("list")
def list_(db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """Stored policies, newest first."""
    from store import Store
    from thinktrace.policy import policies

    rows = policies(Store.open(db))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no policies yet: `python -m reasoning policy build SWEEP_ID`")
    for r in rows:
        kind = " (oracle: upper bound)" if r["oracle"] else ""
        typer.echo(f"{r['id'][:8]}  {r['name']}{kind} · {r['bins']} bins · {r['arms']} arms · {r['n_problems']} problems "
                   f"· model {r['model']} · verifier {r['verifier']} · sweep {(r['sweep_id'] or '-')[:8]}")


@policy_app.command("show")
def show(policy_id: str = typer.Argument(..., help="Policy id or prefix."),
         budgets: Optional[str] = typer.Option(None, "--budgets", help="Mean tokens per question, comma list (default: every plan on its frontier)."),
         db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """Which bin gets which strategy, at each budget."""
    from store import Store
    from thinktrace.policy import load_policy, policy_detail

    wanted = _budgets(budgets)
    row, _ = load_policy(Store.open(db), policy_id)
    detail = policy_detail(row, wanted)
    if as_json:
        print_json(detail)
        return
    typer.echo(f"policy {row.id} · {detail['name']} · sweep {row.sweep_id} · {detail['bins']} bins · "
               f"{detail['n_problems']} problems · probe: {'pass@1 (oracle)' if row.oracle else 'greedy chain, ' + str(detail['verifier'])}")
    for plan in detail["plans"]:
        mark = "" if plan["within_budget"] else " (over budget: the cheapest plan)"
        typer.echo(f"budget {plan['budget']:g}: expected accuracy {100 * plan['expected_accuracy']:.1f}% at "
                   f"{plan['expected_tokens']:.0f} tokens{mark}")
        for b in plan["bins"]:
            typer.echo(f"  bin {b['bin']} ({100 * b['share']:.0f}% of questions): {b['arm']} "
                       f"({100 * b['accuracy']:.1f}%, {b['tokens']:.0f} tokens)")


@policy_app.command("eval")
def eval_(policy_id: str = typer.Argument(..., help="Policy id or prefix."),
          sweep_id: str = typer.Option(..., "--sweep", help="A held-out sweep (same settings, another --seed) to test it on."),
          budgets: Optional[str] = typer.Option(None, "--budgets", help="Mean tokens per question (default: each fixed arm's)."),
          db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """The policy against every fixed strategy at equal mean tokens, on another sweep's problems, with CIs."""
    from store import Store
    from thinktrace.policy import compare

    wanted = _budgets(budgets)
    result = compare(Store.open(db), policy_id, sweep_id, wanted)
    if as_json:
        print_json({"policy": [{**asdict(p), "bins": bins} for p, bins in result.policy_points],
                    "curve": [asdict(p) for p in result.curve],
                    "fixed": [asdict(p) for p in result.fixed],
                    "best_fixed": [asdict(b) if b else None for _, b in result.best_fixed],
                    "reference": asdict(result.reference) if result.reference else None,
                    "reach_tokens": result.reach_tokens, "sweep_id": result.sweep_id, "oracle": result.oracle})
        return
    for line in comparison_table(result):
        typer.echo(line)


def comparison_table(result) -> list[str]:
    """The policy-vs-fixed table as text lines (also printed by bench/policy.py)."""
    def cell(p):
        return f"{100 * p.accuracy:5.1f}% [{100 * p.ci_low:4.1f}, {100 * p.ci_high:4.1f}] @ {p.tokens:6.0f}"

    lines = [f"held-out sweep {result.sweep_id[:8]} · {result.fixed[0].n_problems} problems"
             + (" · ORACLE difficulty: an upper bound" if result.oracle else ""),
             "| budget | policy (95% CI) @ tokens | best fixed within those tokens | its accuracy @ tokens |",
             "|---|---|---|---|"]
    for (point, _), (_, best) in zip(result.policy_points, result.best_fixed):
        lines.append(f"| {point.label.split('@')[-1].strip()} | {cell(point)} | {best.label if best else '-'} | "
                     f"{cell(best) if best else '-'} |")
    if result.reference is not None:
        ref = result.reference
        reach = (f"{result.reach_tokens:.0f} tokens = {result.reach_tokens / ref.tokens:.2f}x its tokens"
                 if result.reach_tokens is not None else "never reached")
        lines.append(f"weighted best-of-N's best: {ref.label} {cell(ref)}; the policy reaches it with {reach}")
    return lines


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
