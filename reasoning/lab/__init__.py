"""The System-2 lab: a tiny reasoner and a learned process reward model (PRM), trained by this
package on the repo's own arithmetic problem generator, small enough that search visibly pays off
on a laptop CPU. See MODEL_CARD.md for what the committed pair can do."""
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
REASONER_DIR = MODELS_DIR / "reasoner"
PRM_DIR = MODELS_DIR / "prm"
THINKER_DIR = MODELS_DIR / "thinker"  # the reasoner taught to think, check and repair (thinker.py)
CHECKER_DIR = PRM_DIR / "checker"  # the PRM's arithmetic checker travels with it
