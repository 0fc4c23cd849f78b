"""PRM verifiers: each calling convention on a tiny, randomly initialised model of its family's
architecture, with a small BPE tokenizer trained here that holds the family's special tokens. Both are
saved with save_pretrained, so the real loading path runs. Each convention's scores are checked
against a reference computed the way the family's own example code does it (single path, no
padding), then batching, padding, chunking, shapes and bad input."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast,
    Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification,
)

from reasoning.errors import UserError
from reasoning.verifiers import check_verifier_spec, load_verifier
from reasoning.verifiers import prm_conventions
from reasoning.verifiers.prm import PRMVerifier, load_prm

CORPUS = [
    "Tom has 3 boxes with 4 apples in each box, so he has 3 * 4 = 12 apples.",
    "After eating 2, he has 12 - 2 = 10 apples. The answer is 10.",
    "The books cost 5 * 7 = 35 dollars. Her change is 50 - 35 = 15 dollars.",
    "There are 24 / 6 = 4 groups. What is 2 + 3? 2 + 3 = 5. The answer is 5.",
]
QUESTION = "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?"
PATHS = [
    ["Tom has 3 * 4 = 12 apples.", "He has 12 - 2 = 10 apples.", "The answer is 10."],
    ["The answer is 12."],
    ["Tom has 3 + 4 = 7 apples.", "He eats 2, so 7 - 2 = 5 are left, and then he counts them again.",
     "So he has 5 apples.", "The answer is 5."],
]

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=False)


def make_tokenizer(special: list[str], *, tags: tuple[str, ...] = (), bos: str | None = None,
                   eos: str = "<|endoftext|>", chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE learnt from CORPUS (any text encodes), plus the family's tokens: `tags` as
    ordinary added tokens (like Math-Shepherd's 'ки'), `special` as special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=320, special_tokens=[eos] + ([bos] if bos else []), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens([AddedToken(t, normalized=False) for t in tags])
    tok.add_special_tokens([t for t in special if t not in (eos, bos)])
    if bos:  # like Mistral's tokenizer: every encoding starts with BOS
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=bos, pad_token=eos)
    if chat_template:
        fast.chat_template = chat_template
    return fast


def spread_weights(model: torch.nn.Module, seed: int) -> None:
    """Larger random weights than the default init, so scores differ clearly from one position to the
    next: a score read one token off cannot pass for the right one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def build_math_shepherd(folder: Path, tok=None) -> Path:
    tok = tok or make_tokenizer([], tags=("ки",), bos="<s>", eos="</s>")
    model = MistralForCausalLM(MistralConfig(vocab_size=len(tok), **TINY))
    return _save(folder, tok, model)


def build_rlhflow(folder: Path, tok=None) -> Path:
    special = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = tok or make_tokenizer(special, bos="<|begin_of_text|>", chat_template=LLAMA3_TEMPLATE)
    tok._tokenizer.post_processor = None  # Llama 3's template writes the BOS itself
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), **TINY))
    return _save(folder, tok, model)


def build_qwen_prm(folder: Path, tok=None) -> Path:
    tok = tok or make_tokenizer(["<|im_start|>", "<|im_end|>", "<extra_0>"], chat_template=QWEN_TEMPLATE)
    model = Qwen2ForTokenClassification(Qwen2Config(vocab_size=len(tok), num_labels=2, **TINY))
    return _save(folder, tok, model)


def build_skywork(folder: Path, v_head: bool = True, nan: bool = False) -> Path:
    tok = make_tokenizer([], bos="<|endoftext|>")
    tok._tokenizer.post_processor = None  # Qwen tokenizers add no BOS; Skywork writes it into the text
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), **TINY))
    _save(folder, tok, model)
    if v_head:  # Skywork keeps its value head in the same checkpoint, as v_head.summary.*
        weights = load_file(folder / "model.safetensors")
        gen = torch.Generator().manual_seed(7)
        weights["v_head.summary.weight"] = torch.randn(1, TINY["hidden_size"], generator=gen)
        weights["v_head.summary.bias"] = torch.tensor([float("nan") if nan else 0.1])
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _save(folder: Path, tok, model) -> Path:
    spread_weights(model, seed=sum(map(ord, type(model).__name__)))  # fixed per architecture
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


BUILDERS = {"math-shepherd": build_math_shepherd, "rlhflow": build_rlhflow, "qwen-prm": build_qwen_prm,
            "skywork": build_skywork}


@pytest.fixture(scope="module")
def prm_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny PRM per convention; the folder names carry no family name, so each is loaded with
    an explicit @CONVENTION."""
    root = tmp_path_factory.mktemp("prms")
    return {name: build(root / f"tiny-{i}") for i, (name, build) in enumerate(BUILDERS.items())}


@pytest.fixture(scope="module")
def verifiers(prm_dirs) -> dict[str, PRMVerifier]:
    return {name: load_prm(f"{folder}@{name}") for name, folder in prm_dirs.items()}


# --- references: each family's own way, one path at a time ----------------------------------------

def reference_math_shepherd(folder: Path, steps: list[str]) -> list[float]:
    """Math-Shepherd's example: 'question step ки\\nstep ки', read at every id equal to the tag's id."""
    tok, model = _reference_model(folder)
    ids = tok(f"{QUESTION} " + "\n".join(f"{s} ки" for s in steps)).input_ids
    assert ids[0] == tok.bos_token_id
    tag, plus, minus = (tok.convert_tokens_to_ids(t) for t in ("ки", "+", "-"))
    logits = model(torch.tensor([ids])).logits[0]
    at = [i for i, t in enumerate(ids) if t == tag]
    return logits[at][:, [plus, minus]].softmax(-1)[:, 0].tolist()


def reference_rlhflow(folder: Path, steps: list[str]) -> list[float]:
    """RLHFlow's single-path example: the conversation up to step k, read 3 tokens from the end
    (the logits that predict the last '+', followed only by <|eot_id|>)."""
    tok, model = _reference_model(folder)
    plus, minus = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
    conversation, scores = [], []
    for k, step in enumerate(steps):
        conversation += [{"role": "user", "content": f"{QUESTION} {step}" if k == 0 else step},
                         {"role": "assistant", "content": "+"}]
        ids = tok(tok.apply_chat_template(conversation, tokenize=False), add_special_tokens=False).input_ids
        assert ids[-2] == plus
        logits = model(torch.tensor([ids])).logits[0, -3, [plus, minus]]
        scores.append(logits.softmax(-1)[0].item())
    return scores


def reference_qwen_prm(folder: Path, steps: list[str]) -> list[float]:
    """Qwen's example: steps joined and ended by <extra_0>, softmax(logits)[1] at each of them."""
    tok, _ = _reference_model(folder, load=False)
    model = Qwen2ForTokenClassification.from_pretrained(folder).eval()
    messages = [{"role": "system", "content": prm_conventions.QWEN_PRM_SYSTEM},
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    ids = tok(tok.apply_chat_template(messages, tokenize=False)).input_ids
    sep = tok.convert_tokens_to_ids("<extra_0>")
    logits = model(torch.tensor([ids])).logits[0]
    return logits[[i for i, t in enumerate(ids) if t == sep]].softmax(-1)[:, 1].tolist()


def reference_skywork(folder: Path, steps: list[str]) -> list[float]:
    """Skywork's prepare_input, and its value head on the causal LM's last hidden state."""
    tok, _ = _reference_model(folder, load=False)
    model = Qwen2ForCausalLM.from_pretrained(folder).eval()
    newline = tok.encode("\n")[-1]
    ids, flags = tok.encode(tok.bos_token + QUESTION + "\n"), []
    for step in steps:
        ids += tok.encode(step) + [newline]
        flags.append(len(ids) - 1)
    weights = load_file(folder / "model.safetensors")
    hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    value = hidden[flags] @ weights["v_head.summary.weight"].T + weights["v_head.summary.bias"]
    return torch.sigmoid(value[:, 0]).tolist()


def _reference_model(folder: Path, load: bool = True):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval() if load else None


REFERENCES = {"math-shepherd": reference_math_shepherd, "rlhflow": reference_rlhflow,
              "qwen-prm": reference_qwen_prm, "skywork": reference_skywork}


# --- specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention", list(BUILDERS))
@torch.inference_mode()
def test_scores_are_read_where_the_familys_own_code_reads_them(convention, prm_dirs, verifiers):
    got = verifiers[convention].score(QUESTION, PATHS)
    want = [REFERENCES[convention](prm_dirs[convention], steps) for steps in PATHS]
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-5)
    # The check can fail: the same model read one token earlier disagrees with the reference.
    conv = verifiers[convention].convention
    shifted = PRMVerifier(prm_dirs[convention], replace(conv, read_offset=conv.read_offset - 1), name="shifted")
    misread = shifted.score(QUESTION, PATHS)
    assert max(abs(a - b) for m, w in zip(misread, want) for a, b in zip(m, w)) > 1e-3


@pytest.mark.parametrize("convention", list(BUILDERS))
def test_batched_scores_equal_one_path_at_a_time_whatever_the_padding_and_chunking(convention, prm_dirs, verifiers):
    right = verifiers[convention]
    one_by_one = [right.score(QUESTION, [steps])[0] for steps in PATHS]
    folder = prm_dirs[convention]
    left = PRMVerifier(folder, prm_conventions.CONVENTIONS[convention], name="left", padding_side="left")
    tiny_chunks = PRMVerifier(folder, prm_conventions.CONVENTIONS[convention], name="chunks", max_batch_rows=2,
                              max_batch_tokens=10)
    for scorer in (right, left, tiny_chunks):
        for got, want in zip(scorer.score(QUESTION, PATHS), one_by_one):
            assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("convention", list(BUILDERS))
def test_every_path_gets_one_score_in_0_1_per_step_even_when_a_step_contains_the_mark(convention, verifiers):
    verifier = verifiers[convention]
    mark = verifier.convention.anchor
    paths = [PATHS[0], [], [f"a step that mentions {mark} itself"], ["x"] * 7]
    scores = verifier.score(f"A question with {mark} in it?", paths)
    assert [len(s) for s in scores] == [3, 0, 1, 7]
    assert all(0.0 <= s <= 1.0 and not math.isnan(s) for path in scores for s in path)
    assert verifier.score(QUESTION, []) == []


def test_the_convention_is_recognised_from_the_model_name_or_config(tmp_path):
    build_math_shepherd(tmp_path / "math-shepherd-tiny")
    verifier = load_verifier(f"prm:{tmp_path / 'math-shepherd-tiny'}")
    assert verifier.convention.name == "math-shepherd" and verifier.name.startswith("prm:")
    assert not verifier.evaluation_only and verifier.n_params > 0
    pick = prm_conventions.pick_convention
    assert pick("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", None, {}, None).name == "rlhflow"
    assert pick("Qwen/Qwen2.5-Math-PRM-72B", None, {}, None).name == "qwen-prm"
    assert pick("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B", None, {}, None).name == "skywork"
    assert pick("someone/renamed", None, {"architectures": ["Qwen2ForProcessRewardModel"]}, None).name == "qwen-prm"
    assert pick("peiyi9979/math-shepherd-mistral-7b-prm", None, {}, "skywork").name == "skywork"  # @ wins


def test_an_unrecognised_prm_asks_for_a_convention_and_lists_them(prm_dirs):
    with pytest.raises(UserError, match=r"prm:.*@CONVENTION, one of math-shepherd, rlhflow, qwen-prm, skywork"):
        load_prm(str(prm_dirs["math-shepherd"]))
    with pytest.raises(UserError, match=r"unknown PRM convention 'shepherd'.*math-shepherd"):
        check_verifier_spec(f"prm:{prm_dirs['math-shepherd']}@shepherd")
    with pytest.raises(UserError, match="names no model"):
        check_verifier_spec("prm:")
    check_verifier_spec("prm:peiyi9979/math-shepherd-mistral-7b-prm")  # syntax only: nothing is loaded
    check_verifier_spec("prm:anything@rlhflow")


def test_a_tokenizer_without_the_conventions_tokens_is_a_user_error_naming_them(tmp_path):
    build_math_shepherd(tmp_path / "no-tag", tok=make_tokenizer([], bos="<s>", eos="</s>"))
    with pytest.raises(UserError, match="no single token for 'ки'"):
        load_prm(f"{tmp_path / 'no-tag'}@math-shepherd")
    build_qwen_prm(tmp_path / "no-sep", tok=make_tokenizer(["<|im_start|>", "<|im_end|>"], chat_template=QWEN_TEMPLATE))
    with pytest.raises(UserError, match="no single token for '<extra_0>'"):
        load_prm(f"{tmp_path / 'no-sep'}@qwen-prm")
    build_rlhflow(tmp_path / "no-template", tok=make_tokenizer(["<|eot_id|>"], bos="<|begin_of_text|>"))
    with pytest.raises(UserError, match="needs the tokenizer's chat template"):
        load_prm(f"{tmp_path / 'no-template'}@rlhflow")


def test_a_tokenizer_that_merges_the_mark_into_its_neighbours_is_refused(tmp_path):
    # "+" exists as a token, but this template glues the reply to the role name, and "assistant+" is
    # a token of its own: the reply would never be read at a "+".
    template = "{% for m in messages %}{{ m['role'] }}{{ m['content'] }}<|eot_id|>{% endfor %}"
    tok = make_tokenizer(["<|begin_of_text|>", "<|eot_id|>"], bos="<|begin_of_text|>", chat_template=template)
    tok.add_tokens(["assistant+"])
    build_rlhflow(tmp_path / "merging", tok=tok)
    with pytest.raises(UserError, match="does not keep the step mark '\\+'"):
        load_prm(f"{tmp_path / 'merging'}@rlhflow")


def test_model_code_from_the_checkpoint_runs_only_with_trust_remote_code(prm_dirs, tmp_path):
    import shutil

    folder = shutil.copytree(prm_dirs["qwen-prm"], tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="pass --trust-remote-code"):
        load_verifier(f"prm:{folder}@qwen-prm")
    # Allowed: transformers now looks for the checkpoint's code (absent from this tiny folder).
    with pytest.raises(UserError, match="cannot load PRM.*modeling_qwen2_rm.py"):
        load_verifier(f"prm:{folder}@qwen-prm", trust_remote_code=True)


def test_nan_scores_are_returned_as_zero_and_counted(tmp_path, caplog):
    verifier = load_prm(f"{build_skywork(tmp_path / 'nan', nan=True)}@skywork")
    scores = verifier.score(QUESTION, PATHS[:2])
    assert scores == [[0.0, 0.0, 0.0], [0.0]]
    assert verifier.nan_scores == 4
    assert "4 NaN step scores" in caplog.text


def test_a_value_head_prm_without_value_head_weights_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no value-head weights"):
        load_prm(f"{build_skywork(tmp_path / 'headless', v_head=False)}@skywork")


def test_a_named_prm_is_one_registry_entry(prm_dirs, monkeypatch):
    monkeypatch.setitem(prm_conventions.NAMED_PRMS, "tiny",
                        prm_conventions.NamedPRM(lambda: prm_dirs["rlhflow"], "rlhflow"))
    verifier = load_verifier("prm:tiny")
    assert verifier.convention.name == "rlhflow" and verifier.name == "prm:tiny"
    assert len(verifier.score(QUESTION, PATHS)[2]) == 4


def test_best_of_n_stores_the_prm_step_scores_and_picks_by_them(verifiers):
    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.tree import Tree
    from reasoning.types import Problem
    from reasoning.verifiers import aggregate

    chains = ["\n\n".join(steps) for steps in PATHS]
    problem = Problem(key="p", question=QUESTION, answer="10")
    tree = Tree(QUESTION, emit=lambda node: None)
    verifier = verifiers["qwen-prm"]
    outcome = get_strategy("best_of_n")(problem, ScriptedLM(chains), verifier, SearchConfig(n=3, select="naive",
                                                                                           aggregate="min"), tree)
    want = verifier.score(QUESTION, PATHS)
    leaves = [n for n in tree.nodes if n.status in ("terminal", "selected") and n.answer is not None]
    assert [n.path_score for n in leaves] == pytest.approx([aggregate(w, "min") for w in want])
    assert tree.nodes[outcome.node].path_score == pytest.approx(max(aggregate(w, "min") for w in want))


def test_batches_stay_within_the_row_and_padded_token_limits(prm_dirs):
    verifier = PRMVerifier(prm_dirs["math-shepherd"], prm_conventions.CONVENTIONS["math-shepherd"], name="chunks",
                           max_batch_rows=3, max_batch_tokens=120)
    paths = [PATHS[i % 3][: 1 + i % 3] for i in range(10)] + [[]]
    encoded = [verifier.convention.encode(verifier.tokenizer, QUESTION, steps) for steps in paths]
    chunks = verifier._chunks(encoded)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(10))  # the empty path needs no forward pass
    for chunk in chunks:
        width = max(len(encoded[i].ids) for i in chunk)
        assert len(chunk) <= 3 and (len(chunk) == 1 or len(chunk) * width <= 120)
