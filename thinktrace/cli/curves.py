"""`sweep`, `curves` and `compare` commands: run a budget sweep, print its accuracy-vs-budget points, test
whether two runs really differ.
`curves --json` is a list of points with stable keys (see reasoning.budget.BudgetPoint)."""
from __future__ import annotations

from typing import Optional

import typer

from reasoning.backends import DEFAULT_MODEL, check_concurrency
from thinktrace.cli.options import (BackendOption, BaseUrlOption, ApiOption, ConcurrencyOption, DbOption, DtypeOption, GpuMemoryOption,
                                   KnobCommand, MaxModelLenOption, ModelParamsOption, PresetOption, SeedsOption,
                                   TensorParallelOption, JsonOption, backend_options, parse_seeds, print_json, whole)
from reasoning.config import SearchConfig, knobs
from reasoning.errors import UserError

# The knobs `sweep` has flags for, set for all its runs (n and the strategies' other budget knobs it
# sets per run itself), with the help each gets here (None: the knob's own).
SWEEP_KNOBS = {"temperature": None, "max_new_tokens": None, "aggregate": None,
               "beam_width": "Largest beam width M; each budget N uses the largest divisor of N <= M."}


def parse_strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserError("--strategies is empty: e.g. --strategies self_consistency,best_of_n,beam_search")
    return names


def parse_budgets(text: str) -> list[int]:
    try:
        budgets = [whole(b) for b in text.split(",") if b.strip()]
    except ValueError:  # not a number, or one beyond 64 bits
        raise UserError(f"--budgets must be whole numbers separated by commas, e.g. 1,2,4,8 (got {text!r})") from None
    if not budgets:
        raise UserError("--budgets is empty: e.g. --budgets 1,2,4,8")
    if min(budgets) < 1:
        raise UserError(f"budgets must be at least 1 (got {text!r})")
    return budgets


def sweep(
    strategies: Optional[str] = typer.Option(None, "--strategies", "-s",
                                             help="Comma list: self_consistency,best_of_n,beam_search,dvts,mcts,cot"),
    budgets: Optional[str] = typer.Option(None, "--budgets", "-b", help="Comma list of budgets N, e.g. 1,2,4,8"),
    dataset: str = typer.Option("arith:2", "--dataset", "-d", help="arith:D, arith:A-B, gsm8k, math500[:level=L,subject=S], FILE.jsonl or hf:NAME"),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", parser=whole, help="Use the first K problems."),
    verifier: Optional[str] = typer.Option(None, "--verifier", "-v",
                                           help="none | self_eval | oracle (evaluation only) | prm:MODEL; "
                                                "strategies that need one get prm:lab with --model lab"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="lab (default), smollm2, an HF id or a folder; with --backend openai, the name the server serves."),
    backend: str = BackendOption,
    base_url: Optional[str] = BaseUrlOption,
    dtype: Optional[str] = DtypeOption,
    gpu_memory_utilization: Optional[float] = GpuMemoryOption,
    tensor_parallel_size: Optional[int] = TensorParallelOption,
    max_model_len: Optional[int] = MaxModelLenOption,
    model_params: Optional[float] = ModelParamsOption,
    api: Optional[str] = ApiOption,
    concurrency: Optional[int] = ConcurrencyOption,
    seed: int = typer.Option(0, "--seed", parser=whole, help="One seed for every run: same problems, same draws."),
    seeds: Optional[str] = SeedsOption,
    preset: Optional[str] = PresetOption,
    knobs: Optional[dict] = None,  # the options of SWEEP_KNOBS given: see register()
    name: str = typer.Option("", "--name", help="A label for the sweep."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Finish the sweep with this id (or prefix)."),
    sweep_id: Optional[str] = typer.Option(None, "--sweep-id", help="Use (or continue) the sweep with this id."),
    db: Optional[str] = DbOption,
):
    """Run the runs an accuracy-vs-budget comparison needs: one N = max(budgets) sampling run shared by
    self_consistency and best_of_n (curves by subsampling), one run per budget for tree strategies."""
    from reasoning.presets import preset_values
    from thinktrace.cli.main import Interrupted
    from thinktrace.sweep import SweepInterrupted, resume_sweep, run_sweep
    from store import Store

    cfg = SearchConfig(**preset_values(preset, knobs))  # a preset's values, the flags given on top
    seed_list = parse_seeds(seeds)
    check_concurrency(concurrency)
    store = Store.open(db)  # checked before the slow model load
    try:
        if resume:
            sid = resume_sweep(store, resume, base_url=base_url, concurrency=concurrency)
        else:
            if strategies is None or budgets is None:
                raise UserError("give --strategies and --budgets (or --resume SWEEP_ID)")
            sid = run_sweep(store, parse_strategies(strategies), parse_budgets(budgets), dataset, limit=limit,
                            seed=seed, model=model, verifier=verifier, cfg=cfg, name=name, sweep_id=sweep_id,
                            backend=backend, backend_options=backend_options(
                                base_url=base_url, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                                model_params=model_params, api=api), concurrency=concurrency,
                            seeds=seed_list, preset=preset)
    except SweepInterrupted as exc:
        raise Interrupted(f"interrupted: finish the sweep with `python -m reasoning sweep --resume {exc.sweep_id}`"
                          ) from exc
    typer.echo(sid)


def curves(
    ref: str = typer.Argument(..., help="A sweep id or a run id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of points."),
    x: str = typer.Option("samples", "--x", help="Budget axis for the frontier: samples | tokens (generated) | prompt_tokens (prefill) | flops (policy + verifier) | seconds (wall clock) | thinking (thinking tokens of a thinking model)"),
    by: Optional[str] = typer.Option(None, "--by", help="Facet: difficulty | pass1"),
    html: Optional[str] = typer.Option(None, "--html", help="Also write the figure as a standalone HTML file."),
    png: Optional[str] = typer.Option(None, "--png", help="Also write the figure as PNG (kaleido, or Chromium)."),
    db: Optional[str] = DbOption,
):
    """Accuracy-vs-budget points (with 95% bootstrap CIs over problems) of a sweep or run."""
    from reasoning.budget import AXES, efficiency, frontier, thinking_fits
    from store import Store
    from thinktrace.curves import load_curves

    if x not in AXES:
        raise UserError(f"unknown --x {x!r}: choose one of {', '.join(AXES)}")
    curve_set = load_curves(Store.open(db), ref, by=by)
    if html or png:
        from viz.curves import budget_figure

        fig = budget_figure(curve_set.points, x, frontier=frontier(curve_set.points, x), by=by,
                            title=curve_set.title, caption=curve_set.caption())
        if html:
            _write(html, lambda path: fig.write_html(path, include_plotlyjs=True))
        if png:
            _write(png, lambda path: write_png(fig, path))
    fits = {(f.curve, f.group): f for f in thinking_fits(curve_set.points)}
    if as_json:  # each point with its curve's log-linear fit on thinking tokens (o1's plot), where it has one
        print_json([{**p.to_json(), "x": p.x(x),
                     "thinking_fit": fits[(p.curve, p.group)].to_json() if (p.curve, p.group) in fits else None}
                    for p in curve_set.points])
        return
    typer.echo(f"{curve_set.title} ({curve_set.source})")
    typer.echo(curve_set.caption())
    for line in curve_set.legend() + curve_set.notes:
        typer.echo(f"  {line}")
    typer.echo(format_table(curve_set.points))
    typer.echo(f"\ncompute-optimal frontier (x = {x}; upper bounds excluded):")
    typer.echo(format_frontier(frontier(curve_set.points, x), x))
    if fits:
        typer.echo("\naccuracy against log2(thinking tokens):")
        for fit in fits.values():
            typer.echo(f"  {fit.sentence()}")
    gains = efficiency(curve_set.points)
    if gains:
        typer.echo("\nefficiency over best-of-N at its largest budget:")
        for g in gains:
            prefix = "" if g.group is None else f"[{by} {g.group}] "
            typer.echo(f"  {prefix}{g.sentence()}")


def format_table(points) -> str:
    """Aligned text table of points; upper bounds are marked with '*'."""
    header = ("strategy", "estimator", "k", "tokens/problem", "prompt tokens", "FLOPs", "verifier FLOPs", "s/problem",
              "seeds", "accuracy", "CI low", "CI high", "group")
    rows = [header]
    for p in points:
        rows.append((p.curve + (" *" if p.upper_bound else ""), p.estimator, str(p.k), f"{p.tokens_per_problem:.1f}",
                     _fixed(p.prompt_tokens_per_problem), _sci(p.flops), _sci(p.verifier_flops),
                     _sci(p.seconds_per_problem), str(p.n_seeds), f"{p.accuracy:.3f}", f"{p.ci_low:.3f}",
                     f"{p.ci_high:.3f}", "-" if p.group is None else str(p.group)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    text_columns = {0, 1}
    return "\n".join("  ".join(c.ljust(w) if i in text_columns else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows)


def format_frontier(steps, x: str) -> str:
    """Budget -> best achievable curve within it."""
    header = ("group", f"budget ({x})", "best", "at N", "tokens/problem", "accuracy", "CI low", "CI high")
    rows = [header] + [("-" if s.point.group is None else str(s.point.group), f"{s.budget:.4g}", s.point.curve,
                        str(s.point.k), f"{s.point.tokens_per_problem:.1f}", f"{s.point.accuracy:.3f}",
                        f"{s.point.ci_low:.3f}", f"{s.point.ci_high:.3f}") for s in steps]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _write(path: str, write) -> None:
    from pathlib import Path

    if not Path(path).expanduser().resolve().parent.is_dir():
        raise UserError(f"cannot write {path}: its folder does not exist")
    write(path)
    typer.echo(f"wrote {path}", err=True)


def write_png(fig, path: str, width: int = 1100, height: int = 650) -> None:
    """PNG of a figure: kaleido when installed, else the figure's HTML in headless Chromium via
    Playwright (`/usr/bin/chromium`, or $THINKTRACE_CHROMIUM), screenshotting the plot only."""
    import os
    import tempfile

    import plotly.graph_objects as go

    fig = go.Figure(fig).update_layout(width=width, height=height)  # a copy: the caller's keeps autosize
    try:
        fig.write_image(path, scale=2)
        return
    except Exception:  # kaleido missing, or it cannot find a browser of its own
        pass
    chromium = os.environ.get("THINKTRACE_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise UserError("PNG export needs kaleido or playwright with Chromium: use --html instead") from None
    if not os.path.exists(chromium):
        raise UserError(f"PNG export needs kaleido or Chromium at {chromium} (`apt-get install chromium`, or set "
                        f"THINKTRACE_CHROMIUM): use --html instead")
    with tempfile.TemporaryDirectory() as folder:
        page_file = os.path.join(folder, "figure.html")
        fig.write_html(page_file, include_plotlyjs=True, config={"displayModeBar": False})
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_page(viewport={"width": width + 40, "height": height + 40}, device_scale_factor=2)
                page.goto(f"file://{page_file}")
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
                page.locator(".js-plotly-plot").first.screenshot(path=path)
            finally:
                browser.close()


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def compare(run_a: str = typer.Argument(..., help="First run (id or prefix)."),
            run_b: str = typer.Argument(..., help="Second run (id or prefix), on the same problems."),
            db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """Is the accuracy difference of two runs real? Exact McNemar and a paired bootstrap CI on the
    problems both graded. --json keys: run_a, run_b, n, a_only, b_only, difference, ci_low, ci_high,
    p_value, significant."""
    from store import Store
    from store.runs import resolve_run_id
    from thinktrace.compare import compare_runs

    store = Store.open(db)
    a, b = resolve_run_id(store, run_a), resolve_run_id(store, run_b)
    test = compare_runs(store, a, b)
    if as_json:
        print_json({"run_a": a, "run_b": b, "n": test.n, "a_only": test.a_only, "b_only": test.b_only,
                    "difference": test.difference, "ci_low": test.ci_low, "ci_high": test.ci_high,
                    "p_value": test.p_value, "significant": test.significant})
        return
    typer.echo(test.sentence(a[:8], b[:8]))


def register(app: typer.Typer) -> None:
    help = {name: text for name, text in SWEEP_KNOBS.items() if text}
    app.command("sweep")(KnobCommand(sweep, lambda: [knobs()[name] for name in SWEEP_KNOBS], help=help))
    app.command()(curves)
    app.command("compare")(compare)
