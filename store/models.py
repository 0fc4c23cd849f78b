"""The tables. Every node is stored, pruned ones too: the tree is the product.

Within a run and problem a node is addressed by `seq` (creation order), and its parent by
`parent_seq`, so a tree exports and imports without remapping database ids.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 1

RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"
RUN_STATUSES = (RUNNING, DONE, FAILED, INTERRUPTED)

# A running run's worker writes `heartbeat_at` every HEARTBEAT_S seconds. Another machine sharing the
# database cannot see the worker's process, so it takes the run for alive while the heartbeat is
# younger than STALE_AFTER_S (hosts' clocks must agree within a minute, as NTP keeps them).
HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime: SQLite gives naive UTC back, PostgreSQL aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str


class Sweep(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Policy(SQLModel, table=True):
    """A compute-optimal policy fitted on a sweep (reasoning/policy.py): its bins, arms and their
    measured accuracy and tokens, as `Policy.to_json()`."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    sweep_id: Optional[str] = Field(default=None, foreign_key="sweep.id", index=True)
    oracle: bool = False  # binned by the gold answers' pass@1: an upper bound, not a runnable policy
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Run(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: Optional[datetime] = None
    status: str = Field(default=RUNNING, index=True)
    strategy: str = Field(index=True)
    # Everything needed to repeat the run: strategy knobs, dataset spec, limit, sampling settings.
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    model_backend: str = "transformers"
    model_id: str = ""
    model_name: str = ""
    model_dtype: str = ""
    model_params: int = 0  # parameter count, for FLOPs axes
    verifier: Optional[str] = None
    verifier_params: int = 0
    evaluation_only: bool = False  # the verifier saw gold answers: accuracy is an upper bound
    aggregate: str = "last"
    dataset: str = ""
    seed: int = 0
    app_version: str = ""
    n_problems: int = 0
    tokens: int = 0
    model_calls: int = 0
    verifier_calls: int = 0
    wall_seconds: float = 0.0
    error: Optional[str] = Field(default=None, sa_column=Column(Text))
    sweep_id: Optional[str] = Field(default=None, foreign_key="sweep.id", index=True)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    worker_pid: Optional[int] = None  # process executing the run, so a dead one is noticed
    worker_host: Optional[str] = None  # the machine of worker_pid (a pid means nothing elsewhere)
    heartbeat_at: Optional[datetime] = None  # the worker's last sign of life, read from other machines


class Problem(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("dataset", "key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset: str = Field(index=True)
    key: str
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: Optional[str] = None
    difficulty: Optional[int] = None
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RunProblem(SQLModel, table=True):
    """The problems a run was asked to solve, in order: resume and progress read this."""

    run_id: str = Field(foreign_key="run.id", primary_key=True)
    position: int = Field(primary_key=True)
    problem_id: int = Field(foreign_key="problem.id", index=True)


class Node(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("run_id", "problem_id", "seq"),
        Index("ix_node_run_problem", "run_id", "problem_id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    problem_id: int = Field(foreign_key="problem.id")
    seq: int
    parent_seq: Optional[int] = None
    depth: int = 0
    text: str = Field(sa_column=Column(Text, nullable=False))
    tokens: int = 0
    logprob: Optional[float] = None
    score: Optional[float] = None
    path_score: Optional[float] = None
    status: str = "kept"
    finish_reason: Optional[str] = None
    answer: Optional[str] = None
    correct: Optional[bool] = None
    iteration: Optional[int] = None
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Result(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("run_id", "problem_id"), Index("ix_result_run", "run_id"))
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id")
    problem_id: int = Field(foreign_key="problem.id")
    position: int = 0
    node_seq: Optional[int] = None
    answer: Optional[str] = None
    correct: Optional[bool] = None
    tokens: int = 0
    model_calls: int = 0
    verifier_calls: int = 0
    wall_seconds: float = 0.0
    votes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
