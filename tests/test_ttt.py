"""Test-time training (issue 19): grids and their augmentations, ARC files, leave-one-out tasks, the
fine-tuning that must leave the base model untouched, and the ttt strategy end to end."""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from reasoning import arclab, fewshot, grids
from reasoning.answers import canonical, is_equiv
from reasoning.errors import UserError
from reasoning.finetune import TrainText, adapted, encode
from reasoning.problems import builtin_problem, load_problems
from tests.helpers_cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "arc"


def _random_grid(rng: random.Random, rows: int | None = None) -> grids.Grid:
    h, w = rows or rng.randint(1, 6), rng.randint(1, 6)
    return tuple(tuple(rng.randrange(10) for _ in range(w)) for _ in range(h))


# --- grids ---------------------------------------------------------------------------------------

def test_every_augmentation_inverts_on_random_grids():
    rng = random.Random(3)
    for trial in range(200):
        grid = _random_grid(rng)
        for aug in grids.augmentations(40, [grid], seed=trial):
            assert aug.inverse(aug.forward(grid)) == grid, aug.name
    # the eight shapes are distinct maps on an asymmetric grid, and colour 0 stays background
    asym = ((1, 2, 3), (4, 5, 6))
    assert len({grids.Augmentation(g).forward(asym) for g in grids.GEOMETRIC}) == 8
    perm = grids.augmentations(20, [asym], seed=1)[-1]
    assert perm.perm[0] == 0 and sorted(perm.perm) == list(range(10))


def test_rows_only_tasks_get_row_safe_augmentations():
    rows = [((1, 0, 2),), ((3, 3, 0),)]
    augs = grids.augmentations(30, rows, seed=0)
    assert {a.geometric for a in augs} == set(grids.ROW_SAFE)
    assert augs[0] == grids.Augmentation()  # identity first
    assert all(len(a.forward(rows[0])) == 1 for a in augs)
    assert len({a.geometric for a in grids.augmentations(30, [((1, 2), (3, 4))], seed=0)}) == 8


def test_grid_text_is_exact_and_never_numeric():
    grid = ((0, 1, 2), (3, 4, 0))
    text = grids.format_grid(grid)
    assert text == "012\n340\n" and grids.parse_grid("junk\n012\n340\n\nmore") == grid
    assert grids.parse_grid("012\n34\n") is None  # ragged
    assert grids.extract_grid_answer("  0120\n\ninput:") == "0120\n"
    assert not is_equiv("0120\n", "120\n") and is_equiv("0120\n", "0120\n")
    assert canonical("0120\n") == "0120\n" and canonical("0120") == "120"  # numbers are unchanged


# --- ARC files -------------------------------------------------------------------------------------

def test_arc_fixtures_load_with_stable_keys_and_two_test_inputs():
    problems = fewshot.load(FIXTURES)
    assert [p.key for p in problems] == ["arclab-test-0", "arclab-test-1", "arclab-test-2:0", "arclab-test-2:1"]
    assert len({p.dataset for p in problems}) == 1 and problems[0].dataset.startswith("arc:arc#")
    for p in problems:
        assert p.meta["answer_format"] == "grid" and grids.is_grid_text(p.answer)
        demos, test_input = fewshot.values_of(p.meta)
        assert p.question == fewshot.render(demos, test_input)[0] and p.question.endswith("output:\n")
    # the files are the generator's tasks
    made = arclab.arc_json("test", 0, 0)
    assert json.loads((FIXTURES / "arclab-test-0.json").read_text()) == made
    one = load_problems(f"arc:{FIXTURES / 'arclab-test-0.json'}")
    assert one[0].answer == arclab.problem("test", 0).answer


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"train": []}', '"train" must be a non-empty list'),
    ('{"train": [{"input": [[1]], "output": [[2]]}]}', '"test" must be a non-empty list'),
    ('{"train": [{"input": [[1, 2], [3]], "output": [[2]]}], "test": [{"input": [[1]]}]}', "rectangular"),
    ('{"train": [{"input": [[1, 12]], "output": [[2]]}], "test": [{"input": [[1]]}]}', "cells are integers 0-9"),
    ('{"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}', 'has no "output"'),
    ('[1, 2]', "must be a JSON object"),
])
def test_malformed_arc_task_is_one_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(UserError, match=message):
        fewshot.load(bad)


def test_malformed_task_through_the_cli_exits_2_and_stores_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [{"input": [[1, 2], [3]], "output": [[2]]}], "test": [{"input": [[1]]}]}')
    db = tmp_path / "t.db"
    result = run_cli("run", "--strategy", "ttt", "--model", "lab-arc", "--dataset", f"arc:{bad}", db=db)
    assert result.code == 2 and len(result.lines) == 1 and "rectangular" in result.lines[0]
    assert not db.exists() or json.loads(run_cli("runs", "--json", db=db).stdout) == []


def test_few_shot_jsonl_with_texts(tmp_path):
    path = tmp_path / "fs.jsonl"
    path.write_text(json.dumps({"id": "caps", "demos": [{"input": "abc", "output": "ABC"},
                                                        {"input": "xy", "output": "XY"}],
                                "input": "hello", "output": "HELLO"}) + "\n")
    [p] = fewshot.load(path)
    assert p.key == "caps" and p.answer == "HELLO" and p.meta["answer_format"] == "text"
    assert fewshot.extract("text", "HELLO\n\ninput:") == "HELLO"


def test_arclab_sets_hold_out_compositions():
    test = load_problems("arclab:test", limit=70)
    assert {tuple(p.meta["composition"].split("+")) for p in test} == set(arclab.TEST_PAIRS)
    train = [arclab.problem("train", i, 1) for i in range(300)]
    assert not {tuple(p.meta["composition"].split("+")) for p in train} & arclab.HELD_OUT
    assert builtin_problem("arclab:test", test[5].key) == test[5]
    with pytest.raises(UserError):
        load_problems("arclab:dev")


# --- leave-one-out and training texts --------------------------------------------------------------

def test_leave_one_out_and_loss_spans():
    demos = [(((1,),), ((2,),)), (((3,),), ((4,),)), (((5,),), ((6,),))]
    loo = fewshot.leave_one_out(demos)
    assert [held for _, held in loo] == demos and all(len(ctx) == 2 and held not in ctx for ctx, held in loo)
    assert fewshot.leave_one_out(demos[:1]) == []
    text, spans = fewshot.render(demos[:2], ((5,),), ((6,),))
    assert [text[a:b] for a, b in spans] == ["2\n\n", "4\n\n", "6\n\n"]


class _Prompt:
    def prompt(self, question):
        return "<s>" + question


def test_training_texts_put_the_loss_on_outputs_in_the_model_prompt():
    from reasoning.strategies.ttt import training_texts

    p = arclab.problem("test", 0)
    demos, _ = fewshot.values_of(p.meta)
    augs = grids.augmentations(2, [g for d in demos for g in d], seed=0)
    texts = training_texts(_Prompt(), demos, augs, grid=True)
    assert len(texts) == len(demos) * 2
    for t in texts:
        assert t.text.startswith("<s>input:\n")
        outs = [t.text[a:b] for a, b in t.spans]
        assert len(outs) == len(demos) and all(grids.parse_grid(o) for o in outs) and outs[-1].endswith("\n\n")


# --- fine-tuning leaves the base model unchanged ----------------------------------------------------

def _digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny_hf():
    """The lab reasoner as a plain Hugging Face Llama (peft sees any causal LM the same way)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoning.lab import REASONER_DIR

    return AutoModelForCausalLM.from_pretrained(REASONER_DIR).eval(), AutoTokenizer.from_pretrained(REASONER_DIR)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_adapted_learns_then_restores_the_base_weights(tiny_hf, method):
    model, tok = tiny_hf
    before = _digest(model)
    text = "Question: what is 7 + 5?\nAnswer:\n7 + 5 = 12. The answer is 12.\n\n"
    item = TrainText(text, ((text.index("7 + 5 ="), len(text)),))
    batch = encode(tok, [item])
    with torch.no_grad():
        base_loss = model(**batch).loss.item()
    with adapted(model, tok, [item] * 4, steps=12, lr=3e-3, method=method, rank=4, batch_size=4, seed=0) as log:
        with torch.no_grad():
            tuned_loss = model(**batch).loss.item()
        assert _digest(model) != before or method == "lora"  # lora adds layers; full changes the weights
    assert len(log.losses) == 12 and log.tokens > 0 and log.trainable_params > 0
    assert tuned_loss < base_loss * 0.7, (base_loss, tuned_loss)
    assert _digest(model) == before
    assert not any(type(m).__name__.startswith("Lora") or "lora" in n for n, m in model.named_modules())
    if method == "lora":
        assert log.trainable_params < sum(p.numel() for p in model.parameters()) / 4


# --- the strategy end to end -------------------------------------------------------------------------

def _ttt_run(db: Path, limit: int, steps: int) -> str:
    """A real ttt run of lab-arc (committed weights) on the first `limit` held-out tasks; its id."""
    result = run_cli("run", "--strategy", "ttt", "--model", "lab-arc", "--dataset", "arclab:test", "--limit",
                     str(limit), "--n", "4", "--ttt-steps", str(steps), "--json", db=db)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["id"]


def test_ttt_run_end_to_end_on_lab_arc(tmp_path):
    db = tmp_path / "t.db"
    run_id = _ttt_run(db, limit=2, steps=4)
    shown = run_cli("show", run_id, "--json", db=db)
    assert shown.code == 0, shown.stderr
    from sqlmodel import select

    from store import Store, models as m
    from store.runs import tree_nodes

    store = Store.open(f"sqlite:///{db}")
    with store.session() as session:
        rows = list(session.exec(select(m.Result).where(m.Result.run_id == run_id)).all())
    assert len(rows) == 2
    for row in rows:
        assert row.meta["train_tokens"] > 0 and all(grids.is_grid_text(a) for a in row.meta["attempts"])
        nodes = tree_nodes(store, run_id, row.problem_id)
        root, preds = nodes[0], [n for n in nodes if n.meta.get("augmentation")]
        assert len(root.meta["ttt"]["losses"]) == 4 and root.meta["ttt"]["examples"] > 0
        assert len(preds) == 4 and preds[0].meta["augmentation_name"] == "identity"
        assert sum(row.votes.values()) <= 4 and row.tokens == sum(n.tokens for n in nodes)


@pytest.mark.parametrize("args, message", [
    (("--dataset", "arith:1"), "has none: use --dataset arclab:test"),
    (("--dataset", "arclab:test", "--backend", "vllm"), "trains the model at test time"),
    (("--dataset", "arclab:test", "--ttt-method", "qlora"), "--ttt-method"),
    (("--dataset", "arclab:test", "--ttt-lr", "0"), "--ttt-lr"),
])
def test_ttt_refusals_are_one_line_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "t.db"
    result = run_cli("run", "--strategy", "ttt", "--model", "lab-arc", "--limit", "1", *args, db=db)
    assert result.code == 2 and len(result.lines) == 1 and message in result.lines[0], result.stderr
    assert not db.exists() or json.loads(run_cli("runs", "--json", db=db).stdout) == []


def test_shipped_arc_agi_evaluation_set():
    problems = load_problems("arc-agi")
    assert len(problems) == 419 and len({p.key.split(":")[0] for p in problems}) == 400
    assert problems[0].key == "00576224" and problems[0].dataset == "arc-agi"
    for p in problems:  # every gold is a grid that grades equal to itself and to nothing shorter
        grid = grids.grid_of(p.answer)
        assert grid is not None and is_equiv(p.answer, p.answer)
        assert grids.format_grid(grid) == p.answer and not is_equiv(p.answer[1:], p.answer)
        assert 1 <= len(p.meta["demos"]) <= fewshot.MAX_DEMOS


def test_ttt_curves_count_training_flops_once_per_task(tmp_path):
    db = tmp_path / "t.db"
    run_id = _ttt_run(db, limit=3, steps=3)
    points = json.loads(run_cli("curves", run_id, "--json", db=db).stdout)
    votes = [p for p in points if p["strategy"] == "ttt"]
    assert [p["k"] for p in votes] == [1, 2, 4] and "vote of k augmented predictions" in votes[0]["curve"]
    from sqlmodel import select

    from reasoning.backends import count_params
    from reasoning.lab import ARC_DIR
    from store import Store, models as m

    with Store.open(f"sqlite:///{db}").session() as session:
        rows = list(session.exec(select(m.Result).where(m.Result.run_id == run_id)).all())
    params = count_params(ARC_DIR)
    train = sum(r.meta["train_tokens"] for r in rows) / len(rows)
    for p in votes:  # 2 N x generated tokens of k predictions + 6 N x tokens trained on (paid once)
        assert p["flops"] == pytest.approx(2 * params * p["tokens_per_problem"] + 6 * params * train, rel=1e-6)


def test_lab_arc_training_is_seeded_and_never_sees_held_out_pairs():
    from reasoning.lab.arc import ArcConfig, arc_batch, make_tokenizer, train_arc

    cfg = ArcConfig()
    cfg.train.steps, cfg.train.warmup, cfg.train.batch_size = 2, 1, 4
    weights = []
    for _ in range(2):
        model, _, info = train_arc(cfg, log=None)
        weights.append(_digest(model))
    assert weights[0] == weights[1] and info["train_tokens"] > 0
    tokenizer = make_tokenizer(cfg)
    assert torch.equal(arc_batch(5, cfg.train, tokenizer)["input_ids"], arc_batch(5, cfg.train, tokenizer)["input_ids"])
    seen = {arclab.task_kinds("train", i, cfg.train.seed) for i in range(2000)}
    assert not seen & arclab.HELD_OUT and len(seen) == len(arclab.TRAIN_PAIRS) + len(arclab.KINDS)
