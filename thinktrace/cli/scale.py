"""`scale-what SMALL LARGE`: a smaller model's sweep with test-time compute against a larger model's greedy
run at equal total FLOPs, per difficulty and query load (thinktrace/scale.py). `--json` keys: small,
large (name, params, train_tokens, pretrain_flops), points (group, ratio, queries, allowance_flops,
gain_points, significant, small, large: curve points), notes."""
from __future__ import annotations

from typing import Optional

import typer

from thinktrace.cli.options import DbOption, JsonOption, positive_list, print_json


def _ratios(text: Optional[str]):
    from reasoning.scale import RATIOS

    return RATIOS if text is None else positive_list(text, "--ratios", "0.1,1,10", high=1e9)


def scale_what(small: str = typer.Argument(..., help="Sweep or run (id or prefix) of the smaller model, with test-time strategies."),
               large: str = typer.Argument(..., help="Sweep or run (id or prefix) of the larger model, with a cot run."),
               ratios: Optional[str] = typer.Option(None, "--ratios", help="Inference / pre-training token ratios R, comma list (default 0.01..100)."),
               db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """Scale what? Smaller model + test-time compute vs larger model greedy, FLOPs-matched, by difficulty."""
    from store import Store
    from thinktrace.scale import scale_what as compute

    wanted = _ratios(ratios)
    result = compute(Store.open(db), small, large, wanted)
    if as_json:
        print_json(result.to_json())
        return
    s, l_ = result.small, result.large
    typer.echo(f"smaller: {s.name} (N={s.params:.3g}, pre-training {s.pretrain_flops:.3g} FLOPs) · larger: {l_.name} "
               f"(N={l_.params:.3g}, {l_.pretrain_flops:.3g} FLOPs)")
    for note in result.notes:
        typer.echo(f"note: {note}")
    for e in result.exchanges:
        typer.echo(("* " if e.significant else "  ") + e.sentence())
    typer.echo("(* = the two 95% intervals do not overlap)")


def register(app: typer.Typer) -> None:
    app.command("scale-what")(scale_what)
