"""bench/reproduce_sal.py: on a machine without CUDA (or without the models) `--quick` says why in one
line and exits 2, before loading anything; its table reads a stored sweep."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quick_on_a_machine_without_cuda_is_one_line_and_exit_2(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the script would run")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "reproduce_sal.py"), "--quick", "--db",
                           str(tmp_path / "sal.db")], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("reproduce_sal: needs a CUDA GPU") and "docs/reproduce.md" in proc.stderr
    assert not (tmp_path / "sal.db").exists()  # nothing written


def test_without_the_models_it_says_which_one_is_missing(monkeypatch):
    import importlib.util

    import torch

    # loaded by path: bench/ on sys.path would shadow the app's `pages` package with bench/pages.py
    spec = importlib.util.spec_from_file_location("reproduce_sal", ROOT / "bench" / "reproduce_sal.py")
    reproduce_sal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce_sal)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    reason = reproduce_sal.unavailable("transformers")
    assert reason and "meta-llama/Llama-3.2-1B-Instruct" in reason and "\n" not in reason
