"""viz/grids.py: grids drawn as ARC's coloured cells, tasks, and the vote and loss of test-time training.
What a reader sees must be the stored grid, cell for cell, and nothing a model wrote may become markup."""
from __future__ import annotations

import re

from reasoning.grids import Augmentation, format_grid
from reasoning.tree import Tree
from reasoning.types import TERMINAL
from viz.grids import (PALETTE, as_grid, answer_label, grid_html, loss_figure, predictions, predictions_html,
                       task_html, value_html, vote_figure, vote_table)

CELL = re.compile(r'<span style="background:(#[0-9A-Fa-f]{6})"></span>')


def cells(drawn: str) -> dict[tuple[int, int], str]:
    """(row, column) -> colour of every cell of a drawn grid (cells row by row; the width from its CSS)."""
    width = int(re.search(r"grid-template-columns:repeat\((\d+),", drawn).group(1))
    return {divmod(i, width): colour for i, colour in enumerate(CELL.findall(drawn))}


def test_arc_palette_in_order():
    assert PALETTE == ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B",
                       "#7FDBFF", "#870C25")


def test_every_cell_is_drawn_in_its_colour():
    grid = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    drawn = grid_html(grid)
    assert cells(drawn) == {(r, c): PALETTE[v] for r, row in enumerate(grid) for c, v in enumerate(row)}
    assert 'aria-label="grid 2x5: 01234/56789"' in drawn and drawn.startswith('<span class="tt-grid"')
    assert "<svg" not in drawn and "<script" not in drawn  # Streamlit's sanitizer drops SVG


def test_wide_grids_get_smaller_cells():
    wide = grid_html(((1,) * 30,))
    size = int(re.search(r"repeat\(30,(\d+)px\)", wide).group(1))
    assert 30 * size <= 400 and len(cells(wide)) == 30


def test_as_grid_reads_answer_texts_and_json_but_never_numbers_or_text():
    assert as_grid("031\n319\n") == ((0, 3, 1), (3, 1, 9))
    assert as_grid([[1, 0], [0, 2]]) == ((1, 0), (0, 2))
    for not_grid in (None, "120", "031319", "hello\n", [[1, 2], [3]], [[10]], [], 42):
        assert as_grid(not_grid) is None, not_grid
    assert answer_label("031\n319\n") == "031/319" and answer_label("42") == "42" and answer_label(None) == "(no answer)"


def test_text_values_are_escaped():
    assert value_html("<script>alert(1)</script>") == "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"
    page = task_html([("<b>x</b>", "y")], "<img src=x onerror=alert(1)>", gold="z", answer="<i>", correct=False)
    assert "<img" not in page and "<b>x" not in page and "&lt;img" in page


def test_task_view_draws_demonstrations_test_gold_and_answer():
    demos = [([[1, 0, 2]], [[2, 0, 1]]), ([[3, 3, 0]], [[0, 3, 3]])]
    page = task_html(demos, [[4, 0, 5]], gold="504\n", answer="504\n", correct=True)
    assert page.count('class="tt-grid"') == 2 * 2 + 3  # demonstrations, test input, gold, answer
    assert "demo 1" in page and "demo 2" in page and "✓ right" in page
    assert 'aria-label="grid 1x3: 504"' in page
    no_answer = task_html(demos, [[4, 0, 5]], gold=None)
    assert no_answer.count('class="tt-grid"') == 5 and "unknown" in no_answer


def ttt_tree(raw_answers, gold: str) -> list:
    """A ttt-shaped tree through the real Tree, as reasoning/strategies/ttt.py grows it: one child per
    augmented prediction with its augmentation and the raw answer mapped back."""
    augs = [Augmentation(), Augmentation("flip_h"), Augmentation("identity", (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)),
            Augmentation("flip_h", (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))]
    tree = Tree("task")
    for aug, raw in zip(augs, raw_answers):
        answer = None if raw is None else format_grid(aug.inverse(as_grid(raw)))
        tree.add(tree.root, raw or "???", status=TERMINAL, answer=answer, correct=answer == gold,
                 meta={"augmentation": aug.to_dict(), "augmentation_name": aug.name, "raw_answer": raw})
    return tree


def test_predictions_and_vote_follow_the_stored_nodes():
    gold = "120\n"
    # identity right; flip_h writes the flipped gold (right once mapped back); the colour swap is wrong; one wrote nothing
    tree = ttt_tree(["120\n", "021\n", "110\n", None], gold)
    tree.select(tree.nodes[1])
    rows = predictions(tree.nodes)
    assert [r["augmentation"] for r in rows] == ["identity", "flip_h", "identity colours 0213456789",
                                                 "flip_h colours 0213456789"]
    assert [r["answer"] for r in rows] == ["120\n", "120\n", "220\n", None]
    assert [r["votes"] for r in rows] == [2, 2, 1, 0] and rows[0]["chosen"]
    table = vote_table(rows)
    assert [(t["answer"], t["votes"], t["correct"]) for t in table] == [("120\n", 2, True), ("220\n", 1, False)]
    assert table[0]["augmentations"] == ["identity", "flip_h"]
    page = predictions_html(rows, attempts=["120\n", "220\n"])
    assert page.count("<tr>") == 5 and "attempt 2" in page and "◆ chosen" in page and "no answer" in page
    fig = vote_figure(table)
    assert list(fig.data[0].y) == ["120", "220"] and list(fig.data[0].x) == [2, 1]
    assert list(fig.data[0].marker.color) == ["#1a9850", "#d73027"]


def test_vote_ties_go_to_the_earlier_prediction():
    tree = ttt_tree(["110\n", "021\n"], "120\n")  # one wrong vote, then one right: a tie
    table = vote_table(predictions(tree.nodes))
    assert [t["answer"] for t in table] == ["110\n", "120\n"]


def test_loss_figure_plots_one_point_per_step():
    fig = loss_figure([2.0, 1.5, 0.7])
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [2.0, 1.5, 0.7]
    assert fig.layout.xaxis.title.text == "step"
