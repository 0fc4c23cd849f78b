"""The lab PRM as a `Verifier` (reasoning/types.py), for evaluation and the Learn page when the
PRM registry is not in the way; `--verifier prm:lab` reaches the same model through the registry."""
from __future__ import annotations

from pathlib import Path

from reasoning.lab import PRM_DIR


class LabPRMVerifier:
    name = "prm:lab"
    evaluation_only = False

    def __init__(self, folder: Path = PRM_DIR):
        from reasoning.lab.prm import LabPRM

        self.prm = LabPRM(Path(folder))

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        return self.prm.score(question, paths)
