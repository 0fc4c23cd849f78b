"""A sweep: the runs an accuracy-vs-budget comparison needs, on the same problems and seeds.

What runs (the plan):
  - Sampling strategies (kind SAMPLES: self_consistency, best_of_n) share ONE run with N = the largest budget.
    Every smaller budget k is read from it by subsampling k of the N chains (reasoning.estimators),
    which is both cheaper and statistically better than separate runs. The shared run is one that
    needs a verifier (best_of_n) when one is asked for, else self_consistency; with a verifier every chain
    is scored either way, so that one run yields the majority (maj@k), naive best-of-k (bon),
    weighted best-of-k (wbon) and oracle coverage (pass@k) curves.
  - Tree strategies (kind SEARCHES: beam_search, dvts, mcts, and any other registered strategy) get one
    run per budget, with the budget as `n` and as each knob of the strategy's declared `budget` (mcts:
    `expansions`). The beam width is the largest divisor of the budget not above
    min(beam_width, budget) (beam_width defaults to 4), so budget % beam_width == 0 always holds
    (budget 6 with width 4 gets 3; budget 1 or 2 gets 1 or 2).
  - A strategy without a budget (kind FIXED: cot) gets one run, one point at k = 1.
Every run uses the sweep's seed, so every run sees the same problems and each problem the same
per-call seeds (thinktrace.runner.problem_seed). With `seeds` (`sweep --seeds 0,1,2,3,4`) the plan is
made once per sampling seed, seed by seed: every run solves the problems of the sweep's `seed`, and
curves average the seeds (thinktrace.curves). `run --seeds` is such a sweep of one run (`repeat`:
its config as given, no budget plan).

Resuming: the plan is stored with the sweep; re-running with the same sweep id (or `--resume`)
skips finished runs, resumes interrupted or failed ones through thinktrace.runner (finished
problems are kept) and creates the runs that are missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from reasoning.config import AUTO, SearchConfig
from reasoning.presets import lookup_preset
from reasoning.problems import dataset_extractor
from reasoning.backends import DEFAULT_MODEL, check_backend, resume_options
from reasoning.errors import UserError
from reasoning.strategies import FIXED, NEEDS, SAMPLES, check_config, check_endpoint, check_strategy, default_verifier, lookup
from reasoning.verifiers import check_verifier_spec
from store import Store, sweeps
from store import models as m
from store.liveness import effective_status, worker_label
from store.runs import run_summary
from store.sweeps import resolve_sweep_id

DEFAULT_BEAM_WIDTH = 4


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; carries the sweep id so the user is told how to resume."""

    def __init__(self, sweep_id: str):
        super().__init__(sweep_id)
        self.sweep_id = sweep_id


@dataclass(frozen=True)
class PlannedRun:
    strategy: str
    n: int
    config: SearchConfig = field(compare=False)
    seed: int = 0  # its sampling seed


@dataclass
class SweepSpec:
    """What a user asks a sweep for; stored with the sweep so that it can be resumed."""

    strategies: list[str]
    budgets: list[int]
    dataset: str
    limit: int | None = None
    seed: int = 0
    model: str = DEFAULT_MODEL
    verifier: str | None = None
    config: SearchConfig = field(default_factory=SearchConfig)
    name: str = ""
    # As for a run (RunRequest): stored so that --resume loads the model the same way. Never a key.
    backend: str = "transformers"
    backend_options: dict = field(default_factory=dict)
    seeds: list[int] | None = None  # sampling seeds, one run of each planned run per seed; None: [seed]
    preset: str | None = None  # the preset `config` came from (reasoning.presets), stored with each run
    repeat: bool = False  # `run --seeds`: the one strategy with `config` as given, once per seed

    @property
    def run_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]

    def validate(self) -> "SweepSpec":
        if self.preset is not None:
            lookup_preset(self.preset)
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise UserError(f"--seeds must name distinct seeds (got {','.join(map(str, self.seeds))})")
        if self.config.extractor == AUTO:  # the dataset's own, stored as its name
            self.config = self.config.replace(extractor=dataset_extractor(self.dataset))
        if not self.strategies:
            raise UserError("--strategies is empty: name at least one, e.g. self_consistency,best_of_n")
        if not self.budgets:
            raise UserError("--budgets is empty: give budgets such as 1,2,4,8")
        if any(b < 1 for b in self.budgets):
            raise UserError(f"budgets must be at least 1 (got {','.join(map(str, self.budgets))})")
        if len(set(self.strategies)) != len(self.strategies):
            raise UserError(f"--strategies names a strategy twice: {','.join(self.strategies)}")
        if "compute_optimal" in self.strategies and self.repeat:
            raise UserError("--seeds cannot repeat compute_optimal (its plan comes from a policy): run it once per --seed")
        if "compute_optimal" in self.strategies:
            raise UserError("compute_optimal runs a policy fitted on a sweep, so it is not an arm of one: compare it "
                            "with `python -m reasoning policy eval POLICY --sweep HELD_OUT_SWEEP`")
        for name in self.strategies:  # the model's own verifier (lab: prm:lab) when one is needed
            self.verifier = default_verifier(name, self.model, self.verifier)
            check_strategy(name, self.verifier)
        check_verifier_spec(self.verifier)
        check_backend(self.backend, self.backend_options)
        for name in self.strategies:
            check_endpoint(name, self.backend_options, self.config, self.backend)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1 (got {self.limit})")
        self.budgets = sorted(set(self.budgets))
        self.config.validate()
        for planned in self.plan():  # e.g. a warm-up larger than a budget: refuse before any run starts
            check_config(planned.strategy, planned.config)
        return self

    def plan(self) -> list[PlannedRun]:
        """The runs this sweep needs, in the order they run: seed by seed, each seed's plan with the
        shared sampling run first."""
        if self.repeat:
            once = [PlannedRun(self.strategies[0], self.config.n, self.config)]
        else:
            once = self._budget_plan()
        return [replace(planned, seed=seed) for seed in self.run_seeds for planned in once]

    def _budget_plan(self) -> list[PlannedRun]:
        runs = []
        asked = [lookup(name) for name in self.strategies]
        # The shared run: one that needs a verifier first (with one, every chain is scored either way).
        sampling = sorted((s for s in asked if s.kind == SAMPLES), key=lambda s: (s.verifier != NEEDS, s.order))
        if sampling:
            n = max(self.budgets)
            runs.append(PlannedRun(sampling[0].name, n, self.config.replace(n=n)))
        for strategy in asked:
            if strategy.kind == FIXED:
                runs.append(PlannedRun(strategy.name, 1, self.config.replace(n=1)))
            elif strategy.kind != SAMPLES:
                runs.extend(PlannedRun(strategy.name, b, tree_config(self.config, b, strategy.name))
                            for b in self.budgets)
        return runs

    def to_params(self) -> dict:
        return {"strategies": self.strategies, "budgets": self.budgets, "dataset": self.dataset,
                "limit": self.limit, "seed": self.seed, "model": self.model, "verifier": self.verifier,
                "config": self.config.to_dict(), "name": self.name, "backend": self.backend,
                "backend_options": self.backend_options,
                **({"seeds": self.seeds} if self.seeds else {}), **({"preset": self.preset} if self.preset else {}),
                **({"repeat": True} if self.repeat else {})}

    @classmethod
    def from_params(cls, params: dict) -> "SweepSpec":
        return cls(strategies=list(params["strategies"]), budgets=list(params["budgets"]),
                   dataset=params["dataset"], limit=params.get("limit"), seed=params.get("seed", 0),
                   model=params.get("model", "smollm2"), verifier=params.get("verifier"),
                   config=SearchConfig.from_dict(params.get("config", {})), name=params.get("name", ""),
                   backend=params.get("backend", "transformers"),
                   backend_options=dict(params.get("backend_options") or {}),
                   seeds=params.get("seeds"), preset=params.get("preset"), repeat=bool(params.get("repeat")))


def beam_width_for(budget: int, cap: int | None = None) -> int:
    """Largest divisor of `budget` not above min(cap, budget): budget % width == 0 always."""
    limit = min(cap or DEFAULT_BEAM_WIDTH, budget)
    return next(w for w in range(limit, 0, -1) if budget % w == 0)


def tree_config(cfg: SearchConfig, budget: int, strategy: str = "") -> SearchConfig:
    """The config of one tree-strategy run: n (the run's key) and the strategy's budget knobs = budget,
    and a beam width that divides it."""
    knobs = lookup(strategy).budget if strategy else ()
    return cfg.replace(**{"n": budget, **dict.fromkeys(knobs, budget),
                          "beam_width": beam_width_for(budget, cfg.beam_width)})


def run_sweep(store: Store, strategies: list[str], budgets: list[int], dataset: str, limit: int | None = None,
              seed: int = 0, model: str = DEFAULT_MODEL, verifier: str | None = None,
              cfg: SearchConfig | None = None, *, name: str = "", sweep_id: str | None = None,
              lm=None, verifier_obj=None, progress: bool | None = None, backend: str = "transformers",
              backend_options: dict | None = None, concurrency: int | None = None, seeds: list[int] | None = None,
              preset: str | None = None) -> str:
    """Create (or continue, when `sweep_id` names an existing sweep with the same settings) a sweep
    and execute every run it is missing, on `backend` (transformers | vllm | openai, with its
    options as for `run`), each run with `concurrency` problems in flight (runner.execute); with
    `seeds`, every planned run once per sampling seed on the problems of `seed`.
    `lm` / `verifier_obj` skip loading `model` / `verifier` (tests pass a scripted model). Returns
    the sweep id."""
    spec = SweepSpec(strategies=list(strategies), budgets=list(budgets), dataset=dataset, limit=limit,
                     seed=seed, model=model, verifier=verifier or None, config=cfg or SearchConfig(),
                     name=name, backend=backend, backend_options=dict(backend_options or {}),
                     seeds=list(seeds) if seeds is not None else None, preset=preset)
    return run_spec(store, spec, sweep_id=sweep_id, lm=lm, verifier_obj=verifier_obj, progress=progress,
                    concurrency=concurrency)


def run_spec(store: Store, spec: SweepSpec, *, sweep_id: str | None = None, lm=None, verifier_obj=None,
             progress: bool | None = None, concurrency: int | None = None) -> str:
    """run_sweep of a spec made by the caller (`run --seeds` makes a `repeat` one)."""
    spec = spec.validate()
    if sweep_id is not None:
        stored = _stored_spec(store, sweep_id)
        if stored is not None:
            if _comparable(stored.to_params()) != _comparable(spec.to_params()):
                raise UserError(f"sweep {sweep_id} exists with other settings: continue it with "
                                f"`python -m reasoning sweep --resume {sweep_id}`")
            return resume_sweep(store, sweep_id, lm=lm, verifier_obj=verifier_obj, progress=progress,
                                concurrency=concurrency)
    from reasoning.problems import load_problems

    load_problems(spec.dataset, limit=spec.limit, seed=spec.seed)  # fail before creating anything
    sweep_id = sweeps.create_sweep(store, spec.name or _default_name(spec), spec.to_params(), sweep_id)
    return _execute(store, sweep_id, spec, lm, verifier_obj, progress, concurrency)


def resume_sweep(store: Store, sweep_id: str, *, lm=None, verifier_obj=None, progress: bool | None = None,
                 base_url: str | None = None, concurrency: int | None = None) -> str:
    """Finish a sweep: run what is missing, resume what was interrupted or failed; on an
    OpenAI-compatible server at `base_url` when given (needed for a sweep from a bundle, which
    carries no server address: reasoning.backends.resume_options)."""
    sweep_id = resolve_sweep_id(store, sweep_id)
    spec = _stored_spec(store, sweep_id)
    spec.backend_options = resume_options(spec.backend, spec.backend_options, base_url, f"sweep {sweep_id}")
    return _execute(store, sweep_id, spec.validate(), lm, verifier_obj, progress, concurrency)


@dataclass
class SweepRunState:
    planned: PlannedRun
    run_id: str | None  # None: not created yet
    status: str | None
    worker: str | None = None  # "process 123 [on host]" while it runs


def sweep_state(store: Store, sweep_id: str) -> list[SweepRunState]:
    """Each planned run of a sweep with its stored run (if any) and status."""
    spec = _stored_spec(store, sweep_id)
    existing = {(r.strategy, r.params.get("n"), r.seed): (r.id, effective_status(r), worker_label(r))
                for r in sweeps.sweep_runs(store, sweep_id)}
    return [SweepRunState(p, *existing.get((p.strategy, p.n, p.seed), (None, None, None))) for p in spec.plan()]


def _execute(store: Store, sweep_id, spec: SweepSpec, lm, verifier_obj, progress, concurrency: int | None = None) -> str:
    from tqdm import tqdm

    from thinktrace import runner
    from reasoning.problems import load_problems

    states = sweep_state(store, sweep_id)
    busy = [s for s in states if s.status == m.RUNNING]
    if busy:
        raise UserError(f"run {busy[0].run_id} of sweep {sweep_id} is still running "
                        f"({busy[0].worker}): wait for it or stop it first")
    todo = [s for s in states if s.status != m.DONE]
    if not todo:
        return sweep_id
    problems = load_problems(spec.dataset, limit=spec.limit, seed=spec.seed)  # a bad file stops before the load
    if lm is None:
        from reasoning.backends import load_model
        from reasoning.verifiers import load_verifier

        lm = load_model(spec.model, backend=spec.backend, **spec.backend_options)
        verifier_obj = load_verifier(spec.verifier, lm)
    runs_bar = tqdm(total=len(states), initial=len(states) - len(todo), unit="run", desc="sweep",
                    position=0, dynamic_ncols=True, disable=None if progress is None else not progress)
    try:
        for state in todo:
            planned = state.planned
            run_id = state.run_id
            if run_id is None:
                label = f"{planned.strategy} n={planned.n}" + (f" seed {planned.seed}" if spec.seeds else "")
                request = runner.RunRequest(
                    strategy=planned.strategy, dataset=spec.dataset, model=spec.model, verifier=spec.verifier,
                    limit=spec.limit, seed=planned.seed, config=planned.config, backend=spec.backend,
                    backend_options=spec.backend_options, preset=spec.preset,
                    problem_seed=spec.seed if spec.seeds else None,
                    name=f"{spec.name or 'sweep'}: {label}").validate()
                run_id = runner.create_run(store, request, problems, lm, verifier_obj, sweep_id=sweep_id)
            runs_bar.set_postfix_str(f"{planned.strategy} n={planned.n}" + (f" seed {planned.seed}" if spec.seeds else ""))
            summary = run_summary(store, run_id)
            total, done = summary.problems_total, summary.problems_done
            problems_bar = tqdm(total=total, initial=done, unit="problem", desc=f"{planned.strategy} n={planned.n}",
                                position=1, leave=False, dynamic_ncols=True, disable=runs_bar.disable)
            try:
                runner.execute(store, run_id, lm, verifier_obj, on_problem=lambda result, row: problems_bar.update(1),
                               concurrency=concurrency)
            finally:
                problems_bar.close()
            runs_bar.update(1)
    except KeyboardInterrupt as exc:
        raise SweepInterrupted(sweep_id) from exc
    finally:
        runs_bar.close()
    return sweep_id


def _stored_spec(store: Store, sweep_id: str) -> SweepSpec | None:
    sweep = sweeps.get_sweep(store, sweep_id)
    return None if sweep is None else SweepSpec.from_params(sweep.params)


def _comparable(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "name"}


def _default_name(spec: SweepSpec) -> str:
    seeds = f" × seeds {','.join(map(str, spec.seeds))}" if spec.seeds else ""
    if spec.repeat:
        return f"{spec.strategies[0]} n={spec.config.n} on {spec.dataset}{seeds}"
    return f"{'+'.join(spec.strategies)} at {','.join(map(str, spec.budgets))} on {spec.dataset}{seeds}"
