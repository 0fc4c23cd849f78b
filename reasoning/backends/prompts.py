"""Prompt text shared by every backend (transformers, vLLM, OpenAI-compatible servers), in a module
that imports no torch: the same question gets the same prompt everywhere, so numbers compare.
"""
from __future__ import annotations

from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER

SYSTEM_PROMPT = (
    "Solve the problem in short steps, one calculation per step. Separate the steps with a blank line, "
    "do not number them, and end with the step 'The answer is N.' where N is the final number."
)

# Worked examples in the exact step format: one operation per step, steps separated by the delimiter.
FEWSHOT_EXAMPLES = [
    ("Tom has 3 boxes with 4 apples in each box. He eats 2 apples. How many apples does he have left?",
     ["Tom has 3 * 4 = 12 apples.", "After eating 2, he has 12 - 2 = 10 apples.", "The answer is 10."]),
    ("A book costs 7 dollars. Mia buys 5 books and pays with a 50 dollar bill. How much change does she get?",
     ["The books cost 5 * 7 = 35 dollars.", "Her change is 50 - 35 = 15 dollars.", "The answer is 15."]),
    ("There are 24 students. They sit in groups of 6, and each group gets 3 pencils. How many pencils are needed?",
     ["There are 24 / 6 = 4 groups.", "The groups need 4 * 3 = 12 pencils.", "The answer is 12."]),
    ("Sam had 15 stickers. He got 8 more and then gave 9 to his sister. How many stickers does he have now?",
     ["After getting more, Sam has 15 + 8 = 23 stickers.", "After giving some away, he has 23 - 9 = 14 stickers.",
      "The answer is 14."]),
]
# In few-shot mode the model, done with its answer, starts a question of its own: that is its EOS.
FEWSHOT_END_MARKERS = ["\nQuestion:"]


def fewshot_prompt(question: str, delimiter: str = DEFAULT_DELIMITER, bos: str = "") -> str:
    """Worked examples, then the question: works for base and instruct models alike. Every example
    step, the last one too, ends with the delimiter, as generation with stop=[delimiter] leaves it."""
    shots = "".join(f"Question: {q}\nAnswer:\n" + "".join(s + delimiter for s in steps) + "\n"
                    for q, steps in FEWSHOT_EXAMPLES)
    return f"{bos}{shots}Question: {question.strip()}\nAnswer:\n"


def chat_prompt(tokenizer, question: str, system_prompt: str = SYSTEM_PROMPT) -> str:
    """The model's own chat template with a system prompt, ours unless a run gives one (a transformers
    tokenizer; no torch)."""
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": question.strip()}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def leading_bos(tokenizer) -> str:
    """The BOS text a model expects at the start when its tokenizer would add one: prompts are rendered
    in full (tokenization adds nothing), so few-shot mode puts it there itself."""
    probe = tokenizer("a").input_ids
    return tokenizer.bos_token if probe and probe[0] == tokenizer.bos_token_id else ""


def render(style: str, question: str, tokenizer=None, delimiter: str = DEFAULT_DELIMITER, bos: str = "") -> str:
    """A question as the model sees it: "fewshot" (worked examples) or "chat" (its chat template)."""
    if style == "fewshot":
        return fewshot_prompt(question, delimiter, bos)
    return chat_prompt(tokenizer, question)


PROMPT_STYLES = ("fewshot", "chat")


def check_prompt_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be 'fewshot' or 'chat', not {style!r}")


class RenderedPrompts:
    """What every backend shares to prompt exactly as the others do: `prompt()` renders a question in
    the backend's style, and `internal_stops` end a few-shot text where the model starts a question of
    its own. A backend sets `prompt_style`, `delimiter` and `tokenizer` (None: few-shot without one),
    then calls `_prompts_ready()`."""

    prompt_style: str
    delimiter: str
    tokenizer = None
    bos = ""
    internal_stops: list[str] = []

    def _prompts_ready(self) -> None:
        self.bos = leading_bos(self.tokenizer) if self.tokenizer is not None else ""
        self.internal_stops = FEWSHOT_END_MARKERS if self.prompt_style == "fewshot" else []

    def prompt(self, question: str, system_prompt: str | None = None) -> str:
        """The question in the backend's style; with `system_prompt` (a run's --system-prompt), in the
        model's chat template with that system message, whatever the style."""
        if system_prompt:
            if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
                raise UserError(f"--system-prompt needs the model's chat template, and {self.name} has none here")
            return chat_prompt(self.tokenizer, question, system_prompt)
        return render(self.prompt_style, question, self.tokenizer, self.delimiter, self.bos)

    def count_tokens(self, text: str) -> int | None:
        """Tokens of a prompt as the model reads it (rendered in full: tokenization adds nothing);
        None without a local tokenizer."""
        return None if self.tokenizer is None else len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _first_token(self, prompt: str, choice: str) -> int:
        """The choice's first token as the tokenizer splits it after this prompt ("Yes" vs " Yes"):
        what self_eval reads the next-token distribution at (backends with a local tokenizer)."""
        base = self.tokenizer(prompt, add_special_tokens=False).input_ids
        full = self.tokenizer(prompt + choice, add_special_tokens=False).input_ids
        if full[:len(base)] == base and len(full) > len(base):
            return full[len(base)]
        return self.tokenizer(choice, add_special_tokens=False).input_ids[0]
