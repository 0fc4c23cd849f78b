"""The System-2 lab: a tiny reasoner and a learned process reward model (PRM), trained by this
package on the repo's own arithmetic problem generator, small enough that search visibly pays off
on a laptop CPU. See MODEL_CARD.md for what the committed pair can do."""
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
REASONER_DIR = MODELS_DIR / "reasoner"
PRM_DIR = MODELS_DIR / "prm"
THINKER_DIR = MODELS_DIR / "thinker"  # the reasoner taught to think, check and repair (thinker.py)
ARC_DIR = MODELS_DIR / "arc"  # lab-arc: arclab tasks in context, adapted at test time (arc.py, issue 19)
CHECKER_DIR = PRM_DIR / "checker"  # the PRM's arithmetic checker travels with it

# The ladder of lab reasoners (issue 16, "scale what?"): registry name -> folder, smallest first. All
# three saw the same data stream for the same steps; only the size differs (train.SIZES).
LADDER = {"lab-xs": MODELS_DIR / "reasoner-xs", "lab-s": MODELS_DIR / "reasoner-s", "lab": REASONER_DIR}


def ladder() -> list[dict]:
    """The ladder's pre-training compute, smallest first, read from each model's training.json:
    [{"model": "lab-xs", "params": N, "pretrain_flops": 6 N D, "train_tokens": D}, ...], N the total
    parameter count (the embedding is tied to the output layer; see train.pretrain_compute)."""
    import json

    rows = []
    for model, folder in LADDER.items():
        info = json.loads((folder / "training.json").read_text())
        rows.append({"model": model, "params": info["params"], "pretrain_flops": info["pretrain_flops"],
                     "train_tokens": info["train_tokens"]})
    return rows
