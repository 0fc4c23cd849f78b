"""Sharing commands: `export`, `import` (bundles, or peers' traces with --from) and `report`.

    python -m reasoning export RUN_ID... -o runs.thinktrace.gz
    python -m reasoning import runs.thinktrace.gz
    python -m reasoning import results.jsonl --from search-and-learn [--model NAME]
    python -m reasoning import treelog.json --from llm-reasoners
    python -m reasoning report RUN_ID -o run.html [--problems 0,1,2]

One `import` verb for everything that brings runs in; `--from` names a peer format. A refused file
is one line on stderr and exit code 2 (reasoning.errors.UserError), and the database is unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from reasoning.errors import UserError
from thinktrace.cli.options import DbOption, JsonOption, print_json


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("import")(import_cmd)
    app.command("report")(report_cmd)


def export_cmd(
    run_ids: List[str] = typer.Argument(..., help="Run ids (or unique prefixes)."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle file to write (gzip JSON)."),
    db: Optional[str] = DbOption,
):
    """Write runs (problems, every node, results, settings) to one portable bundle file."""
    from store import Store
    from store.bundle import write_bundle
    from store.runs import resolve_run_id

    store = Store.open(db)
    ids = [resolve_run_id(store, ref) for ref in run_ids]
    size = write_bundle(store, ids, output)
    typer.echo(f"exported {len(ids)} run{'s' * (len(ids) != 1)} to {output} ({size / 1024:.1f} KB)")


def import_cmd(
    file: Path = typer.Argument(..., help="A ThinkTrace bundle, or a peer's file with --from."),
    source: str = typer.Option("thinktrace", "--from",
                               help="thinktrace (a bundle) | search-and-learn (JSONL rows) | llm-reasoners (TreeLog JSON)"),
    name: str = typer.Option("", "--name", help="Peer imports: a label for the run."),
    model: str = typer.Option("", "--model", help="Peer imports: the model that produced the traces."),
    strategy: Optional[str] = typer.Option(None, "--strategy",
                                           help="Peer imports: the strategy to record (default best_of_n / mcts)."),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
):
    """Import runs into the database, idempotently: runs already present are left as they are."""
    from thinktrace.peers import FORMATS, import_peer
    from store import Store
    from store.bundle import import_bundle

    store = Store.open(db)
    if source == "thinktrace":
        report = import_bundle(store, file)
    elif source in FORMATS:
        report = import_peer(store, source, file, name=name, model=model, strategy=strategy)
    else:
        raise UserError(f"unknown --from {source!r}: choose thinktrace, {', '.join(FORMATS)}")
    if as_json:
        print_json({"imported": report.imported, "skipped": report.skipped})
        return
    typer.echo(report.message())
    for run_id in report.imported:
        typer.echo(f"run {run_id}")


def report_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    problems: Optional[str] = typer.Option(None, "--problems",
                                           help="Positions of the problems whose trees to include, e.g. 0,1,2 "
                                                "(default: the first three, or all of a shorter run)."),
    db: Optional[str] = DbOption,
):
    """Write one self-contained HTML report (works offline): summary, budget curve, trees."""
    from thinktrace.report import write_report
    from store import Store
    from store.runs import resolve_run_id

    try:
        positions = None if problems is None else [int(p) for p in problems.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"--problems must be comma-separated positions like 0,1,2 (got {problems!r})") from None
    store = Store.open(db)
    rid = resolve_run_id(store, run_id)
    size = write_report(store, rid, output, positions)
    typer.echo(f"wrote {output} ({size / 1024:.0f} KB)")
