"""Prefix reuse in the transformers backend: prompts that share leading tokens (the few-shot prompt,
a beam's steps) are run through the model once, and the results are those of running every prompt
in full."""
from __future__ import annotations

import pytest
import torch

from reasoning.backends.transformers_lm import PrefixCache, _Prefix

QUESTION = "Anna has 5 pencils. She buys 3 more pencils. How many pencils does she have?"
OTHER = "A farmer has 12 cows and sells 4 of them. How many cows does he have left?"
STEPS = ["Anna has 5 + 3 = 8 pencils.", "The answer is 8."]

slow = pytest.mark.slow


# --- the cache on its own: fake tensors, no model ----------------------------------------------

def fake_prefix(ids, layers=2) -> _Prefix:
    """A prefix whose keys and values are 8 bytes per token per layer (one float32 each)."""
    keys = [torch.zeros(1, 1, len(ids), 1) for _ in range(layers)]
    return _Prefix(tuple(ids), keys, [k.clone() for k in keys])


def test_longest_finds_the_entry_sharing_most_leading_tokens():
    cache = PrefixCache(max_bytes=10_000)
    cache.put(fake_prefix([1, 2, 3, 4]))
    cache.put(fake_prefix([1, 2, 9]))
    entry, shared = cache.longest([1, 2, 3, 7, 7])
    assert entry.ids == (1, 2, 3, 4) and shared == 3  # a partial match serves its common part
    assert cache.longest([5, 1, 2]) == (None, 0)


def test_an_entry_replaces_the_entries_it_extends_and_is_skipped_when_one_extends_it():
    cache = PrefixCache(max_bytes=10_000)
    cache.put(fake_prefix([1, 2]))
    cache.put(fake_prefix([1, 2, 3]))
    assert list(cache.entries) == [(1, 2, 3)]
    cache.put(fake_prefix([1, 2]))
    assert list(cache.entries) == [(1, 2, 3)]


def test_the_least_recently_used_entries_go_first_and_the_cap_holds():
    per_token = 2 * 2 * 4  # keys and values, 2 layers, float32
    cache = PrefixCache(max_bytes=10 * per_token)
    cache.put(fake_prefix([1, 1, 1, 1]))
    cache.put(fake_prefix([2, 2, 2, 2]))
    cache.longest([1, 1, 1])  # used: now the most recent
    cache.put(fake_prefix([3, 3, 3, 3]))
    assert list(cache.entries) == [(1, 1, 1, 1), (3, 3, 3, 3)] and cache.nbytes <= cache.max_bytes
    cache.put(fake_prefix([1, 1, 1, 1] + list(range(16))))  # larger than the whole cap: not kept
    assert list(cache.entries) == [(1, 1, 1, 1), (3, 3, 3, 3)]


# --- on the embedded model ----------------------------------------------------------------------

@pytest.fixture()
def lm(embedded_lm):
    """The embedded model with an empty prefix cache and zeroed counters, restored afterwards."""
    saved_cache, saved_share = embedded_lm.prefix_cache, embedded_lm.share_prefixes
    embedded_lm.prefix_cache = PrefixCache(saved_cache.max_bytes)
    embedded_lm.stats = dict.fromkeys(embedded_lm.stats, 0)
    yield embedded_lm
    embedded_lm.prefix_cache, embedded_lm.share_prefixes = saved_cache, saved_share


def path(lm, question, steps):
    return lm.prompt(question) + "".join(step + "\n\n" for step in steps)


def greedy(lm, prompts, share):
    lm.share_prefixes = share
    return lm.complete(prompts, n=1, max_new_tokens=12, temperature=0, stop=["\n\n"])


def assert_same(shared, alone):
    for [a], [b] in zip(shared, alone):
        assert a.text == b.text and a.finish_reason == b.finish_reason
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


@slow
def test_sharing_prefixes_of_any_length_gives_the_results_of_running_each_prompt_in_full(lm):
    prompts = [
        path(lm, QUESTION, []),  # the question's prompt: a prefix of the next two
        path(lm, QUESTION, STEPS[:1]),
        path(lm, QUESTION, ["She buys 3."]),
        path(lm, OTHER, []),  # shares only the few-shot block
        "Hi",  # shares nothing: its row reuses nothing, the others still share
    ]
    alone = greedy(lm, prompts, share=False)
    assert lm.stats["prompt_tokens_computed"] == lm.stats["prompt_tokens_total"]
    first = greedy(lm, prompts, share=True)  # within the call: the common part is run once
    again = greedy(lm, prompts, share=True)  # across calls: every prompt but its last token is cached
    assert_same(first, alone)
    assert_same(again, alone)


@slow
def test_the_next_step_runs_only_its_new_tokens(lm):
    lm.complete([path(lm, QUESTION, [])], n=2, max_new_tokens=8, temperature=0.8, seed=0)
    hits, before = lm.prefix_cache.hits, dict(lm.stats)
    step_prompts = [path(lm, QUESTION, STEPS[:1]), path(lm, QUESTION, ["She buys 3 more."])]
    lm.complete(step_prompts, n=2, max_new_tokens=8, temperature=0.8, seed=1, stop=["\n\n"])
    computed = lm.stats["prompt_tokens_computed"] - before["prompt_tokens_computed"]
    total = lm.stats["prompt_tokens_total"] - before["prompt_tokens_total"]
    new_tokens = sum(len(lm.tokenizer(s + "\n\n").input_ids) for s in (STEPS[0], "She buys 3 more."))
    assert lm.prefix_cache.hits > hits
    assert total > 600 and computed <= new_tokens + 4  # a token or two around each boundary re-tokenizes


@slow
def test_the_cache_stays_under_its_cap_and_results_do_not_change(lm):
    one_prompt = len(lm.tokenizer(path(lm, QUESTION, STEPS)).input_ids) * 45 * 1024  # ~45 KB per token
    lm.prefix_cache = PrefixCache(max_bytes=int(1.5 * one_prompt))
    prompts = [path(lm, QUESTION, STEPS[:1]), path(lm, OTHER, [])]
    alone = greedy(lm, prompts, share=False)
    for _ in range(2):
        assert_same(greedy(lm, prompts, share=True), alone)
        assert 0 < lm.prefix_cache.nbytes <= lm.prefix_cache.max_bytes and len(lm.prefix_cache.entries) == 1


@slow
def test_stats_count_prompt_tokens_once_per_distinct_prompt_and_every_generated_token(lm):
    prompts = [path(lm, QUESTION, []), path(lm, QUESTION, STEPS[:1])]
    out = lm.complete(prompts + prompts[:1], n=3, max_new_tokens=6, temperature=1.0, seed=5)
    lengths = [len(lm.tokenizer(p).input_ids) for p in prompts]
    assert lm.stats["prompt_tokens_total"] == sum(lengths)  # the repeated prompt is run once
    assert lm.stats["prompt_tokens_computed"] + lm.stats["prompt_tokens_reused"] == sum(lengths)
    # The question's prompt is run once for both (and its last token again, for its own next-token logits).
    assert lm.stats["prompt_tokens_computed"] == lengths[1] + 1
    assert lm.stats["generated_tokens"] == sum(c.n_tokens for row in out for c in row)


# --- where reuse pays --------------------------------------------------------------------------

def test_prefix_reuse_is_off_for_the_tiny_lab_model_where_it_does_not_pay():
    from reasoning.backends import load_model
    from reasoning.backends.transformers_lm import PREFIX_REUSE_MIN_PARAMS

    lab = load_model("lab")
    assert lab.n_params < PREFIX_REUSE_MIN_PARAMS and lab.share_prefixes is False
    prompts = [lab.prompt("What is 2 + 3?")] * 2
    lab.complete(prompts, n=2, max_new_tokens=8, temperature=0.8, seed=0)
    assert lab.stats["prompt_tokens_reused"] == 0 and not lab.prefix_cache.entries


@slow
def test_prefix_reuse_is_on_for_smollm2_where_it_pays(embedded_lm):
    from reasoning.backends.transformers_lm import PREFIX_REUSE_MIN_PARAMS

    assert embedded_lm.n_params >= PREFIX_REUSE_MIN_PARAMS and embedded_lm.share_prefixes is True
