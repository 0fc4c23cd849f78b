"""The Library page (AppTest) and the queries under it: find runs among many, edit them, delete only
after a confirmation, export and import bundles, and hide every writing action in read-only mode."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import func, select
from streamlit.testing.v1 import AppTest

from store import Store, bundle
from store import models as m
from store.library import LibraryFilter, library_runs
from store.runs import list_runs
from tests.test_app import plain
from tests.test_bundle import make_run

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "library.py")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "thinktrace.db"
    monkeypatch.setenv("THINKTRACE_DB", str(path))
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    return Store(f"sqlite:///{path}")


@pytest.fixture()
def three_runs(db):
    """self-consistency (3/3 right), cot (greedy: right) and a best-of-n run, oldest first."""
    ids = [make_run(db), make_run(db, strategy="cot", verifier=None, n=1),
           make_run(db, strategy="best_of_n", verifier="self_eval", n=2)]
    with db.session() as session:
        for age, run_id in enumerate(reversed(ids)):
            run = session.get(m.Run, run_id)
            run.created_at = datetime(2026, 3, 10, tzinfo=timezone.utc) - timedelta(days=age)
    return ids


def open_page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def caption(at) -> str:
    return next(c.value for c in at.caption if "match" in c.value)


def table(at) -> list[dict]:
    return at.dataframe[0].value.to_dict("records")


def count(db, table_) -> int:
    with db.session() as session:
        return session.exec(select(func.count()).select_from(table_)).one()


def test_an_empty_database_says_what_to_do_and_offers_the_import(db):
    at = open_page()
    assert not at.exception
    assert "No runs in this database yet" in at.info[0].value
    assert len(at.file_uploader) == 1 and len(at.dataframe) == 0


def test_filters_narrow_the_list(db, three_runs):
    at = open_page()
    assert not at.exception
    assert caption(at).startswith("3 runs match")
    assert [r["strategy"] for r in table(at)] == ["best_of_n", "cot", "self_consistency"]  # newest first
    at.multiselect(key="library_strategy").set_value(["cot"]).run()
    assert caption(at).startswith("1 run match") and table(at)[0]["strategy"] == "cot"
    at.multiselect(key="library_strategy").set_value([]).run()
    at.text_input(key="library_q").set_value("BEST_of").run()
    assert [r["strategy"] for r in table(at)] == ["best_of_n"]
    at.text_input(key="library_q").set_value("").run()
    at.date_input(key="library_from").set_value(datetime(2026, 3, 9).date()).run()
    assert [r["strategy"] for r in table(at)] == ["best_of_n", "cot"]
    at.selectbox(key="library_sort").set_value("oldest").run()
    assert [r["strategy"] for r in table(at)] == ["cot", "best_of_n"]


def test_rename_tag_and_notes_are_saved_and_the_tag_filter_finds_the_run(db, three_runs):
    at = open_page()
    run_id = three_runs[0]
    at.multiselect(key="library_selected").set_value([run_id]).run()
    at.text_input(key=f"library_name_{run_id}").set_value("<script>alert(1)</script> demo")
    at.text_input(key=f"library_tags_{run_id}").set_value("class, week 1, ")
    at.text_area(key=f"library_notes_{run_id}").set_value("Look at problem 2.")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception and at.success[0].value == "Saved."
    with db.session() as session:
        run = session.get(m.Run, run_id)
        assert (run.name, run.tags, run.notes) == ("<script>alert(1)</script> demo", ["class", "week 1"],
                                                   "Look at problem 2.")
    at.selectbox(key="library_tag").set_value("week 1").run()
    assert [r["name"] for r in table(at)] == ["<script>alert(1)</script> demo"]  # shown as plain text
    # nothing renders it as HTML: no raw-HTML elements, and markdown gets it escaped
    assert len(at.get("html")) == 0
    assert all("<script>" not in md.value for md in at.markdown)


def test_delete_asks_for_confirmation_and_then_removes_the_run_with_its_nodes(db, three_runs):
    at = open_page()
    victim = three_runs[0]
    nodes_before = count(db, m.Node)
    at.multiselect(key="library_selected").set_value([victim]).run()
    at.button(key="library_delete").click().run()
    assert "cannot be undone" in at.warning[0].value
    assert len(list_runs(db)) == 3  # nothing deleted yet
    at.button(key="library_delete_cancel").click().run()
    assert len(at.warning) == 0 and len(list_runs(db)) == 3
    at.button(key="library_delete").click().run()
    at.button(key="library_delete_confirm").click().run()
    assert not at.exception
    assert at.success[0].value == "Deleted 1 run."
    assert victim not in {r.id for r in list_runs(db)}
    with db.session() as session:
        for t in (m.Node, m.Result, m.RunProblem):
            assert session.exec(select(func.count()).select_from(t).where(t.run_id == victim)).one() == 0
    assert 0 < count(db, m.Node) < nodes_before
    assert caption(at).startswith("2 runs match")


def test_selecting_runs_offers_compare_link_and_bundle_export(db, three_runs):
    at = open_page()
    at.multiselect(key="library_selected").set_value(three_runs[:2]).run()
    assert any(f"compare?runs={three_runs[0]},{three_runs[1]}" in md.value for md in at.markdown)
    assert at.get("download_button")[0].proto.label.startswith("Export 2 runs")


def test_the_html_report_is_built_on_request_and_offered_for_download(db, three_runs):
    at = open_page()
    at.multiselect(key="library_selected").set_value([three_runs[0]]).run()
    assert [b.proto.label for b in at.get("download_button")] == ["Export 1 run (bundle)"]
    at.button(key="library_report_build").click().run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download HTML report" in labels


def test_read_only_mode_hides_rename_delete_and_import(db, three_runs, monkeypatch):
    monkeypatch.setenv("THINKTRACE_READONLY", "1")
    at = open_page()
    assert not at.exception
    at.multiselect(key="library_selected").set_value([three_runs[0]]).run()
    labels = [b.label for b in at.button]
    assert not any("Delete" in label or label == "Save" for label in labels)
    assert len(at.file_uploader) == 0 and len(at.text_area) == 0
    assert len(at.get("download_button")) == 1  # export stays available


def test_uploading_a_bundle_imports_it_and_a_corrupt_one_is_one_error(db, tmp_path):
    source = Store(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    run_id = make_run(source)
    at = open_page()
    at.file_uploader(key="library_upload").set_value(("class.thinktrace.gz", bundle.dump_bundle(source, [run_id]),
                                                      "application/gzip")).run()
    assert not at.exception
    assert "imported 1 run" in at.success[0].value
    assert [r.id for r in list_runs(db)] == [run_id]

    at = open_page()
    before = count(db, m.Node)
    doc = bundle.export_runs(source, [run_id])
    doc["runs"][0]["nodes"][5]["score"] = "high"
    at.file_uploader(key="library_upload").set_value(("bad.gz", gzip.compress(json.dumps(doc).encode()),
                                                      "application/gzip")).run()
    assert not at.exception
    assert len(at.error) == 1
    assert "runs[0].nodes[5].score: expected number" in plain(at.error[0].value)
    assert count(db, m.Node) == before
    at.file_uploader(key="library_upload").set_value(("cut.gz", b"\x1f\x8b\x08\x00garbage", "application/gzip")).run()
    assert len(at.error) == 1 and "not imported" in at.error[0].value


def test_a_read_only_visitor_builds_exports_and_reports_only_of_runs_within_the_limit(db, three_runs, monkeypatch):
    """Visitors could make the server build a report or bundle of any size, as often as they clicked
    (a 300 MB step: 634 MB written, 4.1 GB peak). Over VISITOR_LIMIT they get a message instead; the
    owner keeps both."""
    from pages.common import VISITOR_LIMIT
    from store.library import run_size

    big, small = three_runs[0], three_runs[1]
    with db.session() as session:
        node = session.exec(select(m.Node).where(m.Node.run_id == big)).first()
        node.text = "x" * (VISITOR_LIMIT.chars + 1)
    assert run_size(db, [big]).chars > VISITOR_LIMIT.chars >= run_size(db, [small]).chars
    monkeypatch.setenv("THINKTRACE_READONLY", "1")
    at = open_page()
    at.multiselect(key="library_selected").set_value([big]).run()
    assert not at.exception and not at.get("download_button")
    assert not [b for b in at.button if b.key == "library_report_build"]
    assert sum("not offered on this shared app" in i.value for i in at.info) == 2  # export and report
    at.multiselect(key="library_selected").set_value([big, small]).run()  # together: still over
    assert not at.get("download_button")
    at.multiselect(key="library_selected").set_value([small]).run()
    assert [b.proto.label for b in at.get("download_button")] == ["Export 1 run (bundle)"]
    at.button(key="library_report_build").click().run()
    assert "Download HTML report" in [b.proto.label for b in at.get("download_button")]
    monkeypatch.delenv("THINKTRACE_READONLY")  # the owner: no limit
    at = open_page()
    at.multiselect(key="library_selected").set_value([big]).run()
    assert [b.proto.label for b in at.get("download_button")] == ["Export 1 run (bundle)"]
    assert at.button(key="library_report_build")


# --- queries under the page: thousands of runs, one page at a time ----------------------------


def add_bare_runs(db, count_: int) -> list[str]:
    """Many runs without trees (fast to insert); every 3rd has one problem graded right, others wrong."""
    ids = []
    with db.session() as session:
        problem = m.Problem(dataset="bulk", key="p", question="?", answer="1")
        session.add(problem)
        session.flush()
        for i in range(count_):
            run = m.Run(name=f"bulk {i:04d}", strategy="cot", status="done", tokens=i, wall_seconds=float(i % 7),
                        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i))
            session.add(run)
            session.flush()
            if i % 2 == 0:  # odd runs have no graded result: accuracy unknown
                session.add(m.Result(run_id=run.id, problem_id=problem.id, correct=(i % 3 == 0)))
            ids.append(run.id)
    return ids


def test_library_runs_pages_sorts_and_counts_in_sql(db):
    add_bare_runs(db, 1200)
    rows, total = library_runs(db, limit=50)
    assert total == 1200 and len(rows) == 50 and rows[0].name == "bulk 1199"
    rows, _ = library_runs(db, sort="accuracy", descending=True, limit=1200)
    accs = [r.accuracy for r in rows]
    graded = [a for a in accs if a is not None]
    assert graded == sorted(graded, reverse=True) and accs[: len(graded)] == graded  # unknown accuracy last
    rows, total = library_runs(db, LibraryFilter(text="bulk 00"), sort="tokens", descending=False, offset=90, limit=50)
    assert total == 100 and [r.name for r in rows] == [f"bulk {i:04d}" for i in range(90, 100)]


def test_search_text_and_tags_are_matched_literally_not_as_like_patterns(db):
    db.add(m.Run(name="50% off", strategy="cot", status="done", tags=["a_b"]),
           m.Run(name="500 off", strategy="cot", status="done", tags=["axb"]))
    assert [r.name for r in library_runs(db, LibraryFilter(text="0%"))[0]] == ["50% off"]
    assert library_runs(db, LibraryFilter(text="%"))[1] == 1
    assert [r.name for r in library_runs(db, LibraryFilter(tag="a_b"))[0]] == ["50% off"]


def test_the_page_paginates_thousands_of_runs(db):
    add_bare_runs(db, 1200)
    at = open_page()
    assert not at.exception
    assert caption(at) == "1200 runs match · showing 50 on page 1 of 24"
    at.number_input(key="library_page").set_value(24).run()
    assert caption(at) == "1200 runs match · showing 50 on page 24 of 24"
    assert table(at)[-1]["name"] == "bulk 0000"
