"""`lab` commands: train the System-2 lab pair (reasoner, then PRM and its arithmetic checker) and
print its targets table.

    python -m reasoning lab train [--out DIR] [--seed S] [--steps K] [--prm-steps K] [--checker-steps K]
        [--levels 1,1,2,...]
        [--size xs|s|m]       (reasoner size: m is the committed lab reasoner, s lab-s, xs lab-xs)
        [--reasoner-only]     (train only the reasoner, into OUT/reasoner; without --out, a --size xs|s
                               reasoner goes to reasoning/lab/models/reasoner-SIZE)
        [--resume-from DIR]   (continue a saved reasoner with a warm restart at step --steps)
        [--prm-only]          (train only the PRM, on the samples of the reasoner in OUT/reasoner)
        [--checker-only]      (train only the PRM's arithmetic checker, into OUT/prm/checker)
        [--thinker-only] [--thinker-steps K]  (only the thinker, fine-tuned from OUT/reasoner, into OUT/thinker)
        [--arc-only] [--arc-steps K]  (only lab-arc, the arclab model test-time training adapts, into OUT/arc)
    python -m reasoning lab eval [--full] [--no-checker]
    python -m reasoning lab eval --thinker [--per-level N] [--levels 3,4,5]
    python -m reasoning lab eval --ladder [--full | --per-level N] [--levels 1,2,3,4,5]
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from reasoning.config import SearchConfig
from thinktrace.cli.options import finite, whole

lab = typer.Typer(no_args_is_help=True, help="The System-2 lab: a tiny reasoner and PRM trained by this repo.")


@lab.command()
def train(
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for reasoner/ and prm/ (default: the committed "
                                       "reasoning/lab/models; pass another to keep them)."),
    seed: int = typer.Option(1, "--seed", parser=whole, help="Seed of weights, data and paths (not 0: the evaluation seed)."),
    steps: Optional[int] = typer.Option(None, "--steps", parser=whole, help="Reasoner steps, first cosine cycle (default: the card's)."),
    restart_steps: Optional[int] = typer.Option(None, "--restart-steps", parser=whole, help="Reasoner steps after the warm restart (0: none)."),
    prm_steps: Optional[int] = typer.Option(None, "--prm-steps", parser=whole, help="PRM optimizer steps (default: the card's)."),
    prm_problems: Optional[int] = typer.Option(None, "--prm-problems", parser=whole, help="Problems whose sampled paths train the PRM."),
    threads: int = typer.Option(1, "--threads", parser=whole, help="Torch threads (1 is fastest on a shared 2-core machine)."),
    levels: Optional[str] = typer.Option(None, "--levels", help="Reasoner batch levels, comma-separated; repeat a "
                                         "level to weight it (default 1,2,3,4,5)."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Reasoner folder to continue: its "
                                               "weights start a warm restart at step --steps (fresh data)."),
    prm_only: bool = typer.Option(False, "--prm-only", help="Keep the reasoner in OUT/reasoner (default: the "
                                  "committed one) and train only the PRM on its samples."),
    checker_steps: Optional[int] = typer.Option(None, "--checker-steps", parser=whole, help="Arithmetic checker optimizer steps "
                                                "(default: the card's)."),
    checker_only: bool = typer.Option(False, "--checker-only", help="Train only the PRM's arithmetic checker "
                                      "(it needs neither model: it learns from random equations)."),
    thinker_steps: Optional[int] = typer.Option(None, "--thinker-steps", parser=whole, help="Thinker steps, first cosine "
                                                "cycle (default: the card's)."),
    thinker_restart_steps: Optional[int] = typer.Option(None, "--thinker-restart-steps", parser=whole,
                                                        help="Thinker steps after its warm restart (0: none)."),
    thinker_only: bool = typer.Option(False, "--thinker-only", help="Train only the lab thinker (--model lab-think), "
                                      "fine-tuned from the reasoner in OUT/reasoner (default: the committed one)."),
    arc_only: bool = typer.Option(False, "--arc-only", help="Train only lab-arc (--model lab-arc), the arclab "
                                  "model test-time training adapts (from scratch, on arclab:train tasks), into OUT/arc."),
    arc_steps: Optional[int] = typer.Option(None, "--arc-steps", parser=whole, help="lab-arc steps (default: the card's)."),
    size: str = typer.Option("m", "--size", help="Reasoner size: xs (d=64, 2 layers; lab-xs), s (d=96, 3 layers; "
                             "lab-s) or m (d=128, 4 layers; the lab reasoner)."),
    reasoner_only: bool = typer.Option(False, "--reasoner-only", help="Train only the reasoner (no PRM, checker "
                                       "or thinker), into OUT/reasoner (without --out: reasoning/lab/models/"
                                       "reasoner-SIZE for xs and s)."),
):
    """Train the reasoner, then the PRM on the reasoner's own samples, then the PRM's arithmetic
    checker, then the thinker from the reasoner; save them as HF folders (OUT/reasoner, OUT/prm,
    OUT/prm/checker, OUT/thinker)."""
    from reasoning.errors import UserError
    from reasoning.lab import MODELS_DIR
    from reasoning.lab.checker import CheckerConfig, train_checker
    from reasoning.lab.prm import PRMConfig, train_prm
    from reasoning.lab.train import SIZES, TrainConfig, train_reasoner

    if seed == 0:
        raise UserError("--seed 0 is the built-in evaluation seed: train with another one")
    if size not in SIZES:
        raise UserError(f"--size must be one of {', '.join(SIZES)} (got {size!r})")
    # --reasoner-only without --out: a ladder size goes to models/reasoner-SIZE, next to the committed one
    reasoner_out = out / "reasoner" if out else MODELS_DIR / ("reasoner" if size == "m" else f"reasoner-{size}")
    out = out or MODELS_DIR
    reasoner_cfg, prm_cfg = TrainConfig(seed=seed, threads=threads, model=SIZES[size]), PRMConfig(seed=seed, threads=threads)
    if steps is not None:
        reasoner_cfg.steps = steps
    if restart_steps is not None:
        reasoner_cfg.restart_steps = restart_steps
    if levels is not None:
        try:
            reasoner_cfg.levels = tuple(int(x) for x in levels.split(","))
        except ValueError:
            raise UserError(f"--levels must be comma-separated integers (got {levels!r})") from None
        if not all(1 <= x <= 5 for x in reasoner_cfg.levels):
            raise UserError(f"--levels must be between 1 and 5 (got {levels!r})")
    if resume_from is not None and not (resume_from / "config.json").exists():
        raise UserError(f"--resume-from {resume_from} is not a saved reasoner folder")
    if resume_from is not None:
        import json

        saved, want = json.loads((resume_from / "config.json").read_text()), SIZES[size]
        if (saved.get("hidden_size"), saved.get("num_hidden_layers")) != (want.d_model, want.n_layers):
            raise UserError(f"--resume-from {resume_from} holds a model of d_model {saved.get('hidden_size')}, "
                            f"{saved.get('num_hidden_layers')} layers, not --size {size}'s {want.d_model}, {want.n_layers}")
    if prm_steps is not None:
        prm_cfg.steps = prm_steps
    if prm_problems is not None:
        prm_cfg.problems = prm_problems
    checker_cfg = CheckerConfig(seed=seed, threads=threads)
    if checker_steps is not None:
        checker_cfg.steps = checker_steps
    for value, flag in ((reasoner_cfg.steps, "--steps"), (prm_cfg.steps, "--prm-steps"), (prm_cfg.problems, "--prm-problems"),
                        (reasoner_cfg.restart_steps + 1, "--restart-steps"), (checker_cfg.steps, "--checker-steps")):
        if value < 1:
            raise UserError(f"{flag} must be at least 1 (got {value})")
    from reasoning.lab.thinker import ThinkerConfig, train_thinker

    thinker_cfg = ThinkerConfig(seed=seed, threads=threads)
    if thinker_steps is not None:
        thinker_cfg.steps = thinker_steps
    if thinker_restart_steps is not None:
        thinker_cfg.restart_steps = thinker_restart_steps
    if thinker_cfg.steps < 1 or thinker_cfg.restart_steps < 0:
        raise UserError(f"--thinker-steps must be at least 1 and --thinker-restart-steps at least 0 (got "
                        f"{thinker_cfg.steps}, {thinker_cfg.restart_steps})")
    if sum((prm_only, checker_only, thinker_only, reasoner_only, arc_only)) > 1:
        raise UserError("--reasoner-only, --prm-only, --checker-only, --thinker-only and --arc-only exclude each other: "
                        "give one, or none to train everything")
    if arc_steps is not None and arc_steps < 1:
        raise UserError(f"--arc-steps must be at least 1 (got {arc_steps})")
    if arc_only:
        from reasoning.lab.arc import ArcConfig, train_arc

        arc_cfg = ArcConfig()
        arc_cfg.train.seed, arc_cfg.train.threads = seed, threads
        if arc_steps is not None:
            arc_cfg.train.steps = arc_steps
        _, _, info = train_arc(arc_cfg, out / "arc", log=typer.echo)
        typer.echo(f"lab-arc saved to {out / 'arc'} ({info['train_seconds']:.0f} s)")
        return
    if size != "m" and not reasoner_only:
        raise UserError(f"--size {size} trains a ladder reasoner only: add --reasoner-only (the PRM, checker and "
                        "thinker are made from the m reasoner)")
    if reasoner_only:
        _, _, info = train_reasoner(reasoner_cfg, reasoner_out, log=typer.echo, resume_from=resume_from)
        typer.echo(f"reasoner saved to {reasoner_out} ({info['train_seconds']:.0f} s)")
        return
    if thinker_only:
        if not (out / "reasoner" / "config.json").exists():
            raise UserError(f"--thinker-only needs a saved reasoner in {out / 'reasoner'}")
        _, _, info = train_thinker(out / "reasoner", thinker_cfg, out / "thinker", log=typer.echo)
        typer.echo(f"thinker saved to {out / 'thinker'} ({info['train_seconds']:.0f} s)")
        return
    if prm_only and not (out / "reasoner" / "config.json").exists():
        raise UserError(f"--prm-only needs a saved reasoner in {out / 'reasoner'}")
    if not (prm_only or checker_only):
        _, _, info = train_reasoner(reasoner_cfg, out / "reasoner", log=typer.echo, resume_from=resume_from)
        typer.echo(f"reasoner saved to {out / 'reasoner'} ({info['train_seconds']:.0f} s)")
    if not checker_only:
        _, _, info = train_prm(out / "reasoner", prm_cfg, out / "prm", log=typer.echo)
        typer.echo(f"PRM saved to {out / 'prm'} ({info['train_seconds']:.0f} s)")
    if not prm_only:
        _, info = train_checker(checker_cfg, out / "prm" / "checker", log=typer.echo)
        typer.echo(f"checker saved to {out / 'prm' / 'checker'} ({info['train_seconds']:.0f} s)")
    if not (prm_only or checker_only):
        _, _, info = train_thinker(out / "reasoner", thinker_cfg, out / "thinker", log=typer.echo)
        typer.echo(f"thinker saved to {out / 'thinker'} ({info['train_seconds']:.0f} s)")


@lab.command("eval")
def eval_(
    per_level: int = typer.Option(50, "--per-level", parser=whole, help="Problems per level, greedy (the model card uses 200)."),
    sample_per_level: int = typer.Option(25, "--sample-per-level", parser=whole, help="Problems per level with 16 samples each."),
    full: bool = typer.Option(False, "--full", help="200 problems per level, as in the model card."),
    reasoner: Optional[Path] = typer.Option(None, "--reasoner", help="Reasoner folder (default: the committed one)."),
    prm: Optional[Path] = typer.Option(None, "--prm", help="PRM folder (default: the committed one)."),
    temperature: float = typer.Option(SearchConfig.temperature, "--temperature", "-t", parser=finite, help="Sampling temperature (the CLI's default)."),
    no_checker: bool = typer.Option(False, "--no-checker", help="Score with the PRM alone, without its arithmetic checker."),
    thinker: bool = typer.Option(False, "--thinker", help="The lab thinker's table instead: accuracy by thinking budget."),
    thinker_dir: Optional[Path] = typer.Option(None, "--thinker-dir", help="Thinker folder (default: the committed one)."),
    levels: Optional[str] = typer.Option(None, "--levels", help="--thinker / --ladder: levels, comma-separated "
                                         "(default 3,4,5 / 1,2,3,4,5)."),
    ladder: bool = typer.Option(False, "--ladder", help="Greedy accuracy per level of the lab reasoner ladder "
                                "(lab-xs, lab-s, lab) instead."),
):
    """Print the targets table of the lab pair (or, with --thinker, of the lab thinker) on the built-in
    evaluation problems."""
    from reasoning.lab import PRM_DIR, REASONER_DIR

    if thinker and ladder:
        from reasoning.errors import UserError

        raise UserError("--thinker and --ladder exclude each other: give one")
    if thinker:
        _thinker_table(thinker_dir, 200 if full else per_level, levels or "3,4,5")
        return
    if ladder:
        _ladder_table(200 if full else per_level, levels or "1,2,3,4,5")
        return
    from reasoning.lab.evaluate import evaluate, format_table, load_pair

    lm, verifier = load_pair(reasoner or REASONER_DIR, prm or PRM_DIR, checker=not no_checker)
    report = evaluate(lm, verifier, per_level=200 if full else per_level,
                      sample_per_level=200 if full else sample_per_level, beam_problems=100 if full else 10,
                      temperature=temperature,
                      log=lambda line: typer.echo(line, err=True))
    typer.echo(format_table(report))


def _eval_levels(levels: str) -> tuple[int, ...]:
    from reasoning.errors import UserError

    try:
        chosen = tuple(int(x) for x in levels.split(","))
    except ValueError:
        raise UserError(f"--levels must be comma-separated integers (got {levels!r})") from None
    if not chosen or not all(1 <= x <= 5 for x in chosen):
        raise UserError(f"--levels must be between 1 and 5 (got {levels!r})")
    return chosen


def _ladder_table(per_level: int, levels: str) -> None:
    """Greedy accuracy of each ladder model on the first `per_level` built-in problems per level (the
    greedy column of `lab eval`, the same generate())."""
    import time

    from reasoning.backends import load_model
    from reasoning.lab import LADDER, ladder
    from reasoning.lab.evaluate import generate
    from reasoning.problems import load_problems

    chosen = _eval_levels(levels)
    compute = {row["model"]: row for row in ladder()}
    typer.echo(f"Lab reasoner ladder, greedy on the first {per_level} built-in problems per level (seed 0)")
    typer.echo(f"{'model':>7} {'params':>9} {'FLOPs':>9} " + " ".join(f"{f'L{x}':>6}" for x in chosen))
    for name in LADDER:
        lm = load_model(name)
        lm.max_batch_rows = 128
        started, cells = time.time(), []
        for level in chosen:
            problems = load_problems(f"arith:{level}", limit=per_level)
            right = sum(p.correct for [p] in generate(lm, problems, 1, 0.0))
            cells.append(f"{100 * right / len(problems):.1f}%")
            typer.echo(f"{name} level {level}: {right}/{len(problems)}", err=True)
        typer.echo(f"{name:>7} {compute[name]['params']:>9,} {compute[name]['pretrain_flops']:>9.2e} "
                   + " ".join(f"{c:>6}" for c in cells))
        typer.echo(f"{name}: {time.time() - started:.0f} s", err=True)


def _thinker_table(folder: Optional[Path], per_level: int, levels: str) -> None:
    from reasoning.backends import load_model
    from reasoning.lab.think_eval import evaluate, format_table

    chosen = _eval_levels(levels)
    lm = load_model("lab-think" if folder is None else str(folder))
    report = evaluate(lm, levels=chosen, per_level=per_level, log=lambda line: typer.echo(line, err=True))
    typer.echo(format_table(report))


def register(app: typer.Typer) -> None:
    app.add_typer(lab, name="lab")
