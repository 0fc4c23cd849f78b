"""Compute-optimal policies: stored with the sweep they were fitted on (reasoning/policy.py fits them)."""
from __future__ import annotations

from sqlmodel import select

from store import models as m
from store.db import Store
from store.runs import resolve_prefix


def create_policy(store: Store, name: str, sweep_id: str | None, body: dict, oracle: bool = False,
                  policy_id: str | None = None) -> str:
    policy = m.Policy(name=name, sweep_id=sweep_id, body=body, oracle=oracle)
    if policy_id:
        policy.id = policy_id
    with store.session() as session:
        session.add(policy)
    return policy.id


def get_policy(store: Store, policy_id: str) -> m.Policy | None:
    with store.session() as session:
        return session.get(m.Policy, policy_id)


def resolve_policy_id(store: Store, ref: str) -> str:
    """A full policy id or a unique prefix of one."""
    return resolve_prefix(store, ref, {"policy": m.Policy.id}, "policy", "policies")[1]


def list_policies(store: Store, sweep_ids: list[str] | None = None) -> list[m.Policy]:
    """Policies, newest first (only those fitted on `sweep_ids`, when given)."""
    query = select(m.Policy).order_by(m.Policy.created_at.desc())
    if sweep_ids is not None:
        query = query.where(m.Policy.sweep_id.in_(sweep_ids))
    with store.session() as session:
        return list(session.exec(query).all())
