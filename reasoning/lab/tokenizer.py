"""The lab tokenizer: a small byte-level BPE learnt from the generator's own text, with every digit
its own token, saved as a plain HF `PreTrainedTokenizerFast` (tokenizer.json) with a chat template.

Why not one token per character: a level-5 problem and its solution are ~700 characters; BPE over
the generator's tiny vocabulary ("apples", " has", " and") makes that ~3x fewer tokens, so training
and generation are ~3x cheaper and a whole solution fits the default per-chain token budget.
Digits stay single tokens so the arithmetic the model learns is digit by digit, as with characters.
Byte-level means any text (a user's own question) still encodes; nothing is ever unknown.
"""
from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS = "<pad>", "</s>"
# Math-Shepherd's step tag: the PRM reads a path as "step ки\n\n" and predicts "+" or "-" after each tag.
STEP_TAG, GOOD, BAD = "ки", "+", "-"

# The reasoner's prompt is plain text; the chat template renders a user message into it (a
# system prompt is ignored: the model was never trained with one), so `apply_chat_template` and
# `prompt()` of the transformers backend give exactly the training prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ 'Question: ' + (message['content'] | trim) + '\\nAnswer:\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ message['content'] + '" + EOS + "' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


def prompt_text(question: str) -> str:
    """What the reasoner continues; the chat template renders the same text."""
    return f"Question: {question.strip()}\nAnswer:\n"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 768) -> PreTrainedTokenizerFast:
    """Learn the BPE merges from `texts` (deterministic for the same texts) and wrap it for HF."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([STEP_TAG])  # one token, never split, but not "special": it decodes as text
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast
