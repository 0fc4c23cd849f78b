"""The search tree a strategy grows for one problem, streamed node by node as it grows.

Strategies never build store rows: they call `add` / `update`, and every change is passed to
`emit` at once, so the app can show a tree growing live and nothing is thrown away.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoning.types import DEFAULT_DELIMITER, SELECTED, Emit, Node


class Tree:
    def __init__(self, question: str, emit: Emit | None = None, delimiter: str = DEFAULT_DELIMITER):
        self.nodes: list[Node] = []
        self.delimiter = delimiter
        self._emit = emit or (lambda node: None)
        self.root = self.add(None, question)

    def add(self, parent: Node | None, text: str, **fields) -> Node:
        node = Node(
            seq=len(self.nodes),
            parent=None if parent is None else parent.seq,
            depth=0 if parent is None else parent.depth + 1,
            text=text,
            **fields,
        )
        self.nodes.append(node)
        self._emit(node)
        return node

    def update(self, node: Node, **changes) -> Node:
        for name, value in changes.items():
            setattr(node, name, value)
        self._emit(node)
        return node

    def path(self, node: Node) -> list[Node]:
        """Root-exclusive list of step nodes from the first step to `node`: `depth` steps up, no more
        (every walk over a tree is bounded, whatever its parents say)."""
        steps = []
        for _ in range(node.depth):
            steps.append(node)
            node = self.nodes[node.parent]
        return steps[::-1]

    def steps(self, node: Node) -> list[str]:
        return [n.text for n in self.path(node)]

    def select(self, node: Node) -> None:
        """Mark the chosen path, root included, as `selected`."""
        for step in [self.root, *self.path(node)]:
            self.update(step, status=SELECTED)


@dataclass
class Step:
    text: str
    tokens: int
    logprob: float | None


def split_steps(text: str, delimiter: str, token_ends=None, token_logprobs=None) -> list[Step]:
    """Split a whole completion into steps on the delimiter, attributing each generated token (and
    its logprob) to the step in which the token ends. Blank pieces are merged into the step before
    them, so a run of delimiters never makes an empty step."""
    pieces: list[tuple[str, int]] = []  # (stripped text, char offset where the piece ends)
    offset = 0
    for raw in text.split(delimiter):
        offset += len(raw)
        end = min(offset + len(delimiter), len(text))
        if raw.strip() or not pieces:
            pieces.append((raw.strip(), end))
        else:
            pieces[-1] = (pieces[-1][0], end)
        offset += len(delimiter)
    if len(pieces) > 1 and not pieces[-1][0]:
        pieces[-2] = (pieces[-2][0], pieces[-1][1])
        pieces.pop()
    tokens = [0] * len(pieces)
    logprobs: list[float | None] = [None] * len(pieces)
    if token_ends is not None:
        i = 0
        for t, end in enumerate(token_ends):
            while i < len(pieces) - 1 and end > pieces[i][1]:
                i += 1
            tokens[i] += 1
            if token_logprobs is not None:
                logprobs[i] = (logprobs[i] or 0.0) + token_logprobs[t]
    return [Step(txt, tok, lp) for (txt, _), tok, lp in zip(pieces, tokens, logprobs)]
