"""Regenerate every picture in docs/screenshots/ from nothing: `python scripts/screenshots.py`.

Run by hand (the tests never write into docs/). On a fresh database it makes the runs that show
ThinkTrace at its best on the lab pair, then captures each page in headless Chromium (Debian's
/usr/bin/chromium through Playwright, never `playwright install`) at a fixed size:

  1. runs, with the CLI, into a scratch database: greedy `cot`, and a sweep of self_consistency,
     best_of_n and beam_search (N = 1, 2, 4, 8, beam width 2) with the lab PRM, all on the first 20
     level-4 built-in problems, seed 0;
  2. pins what is not seeded: the runs go to the app's database through a bundle (`export`, `import`)
     whose run and sweep ids are made from the runs' names and whose clock starts at PINNED_CLOCK (the
     dates in run labels); everything else in them is what the runs stored;
  3. chooses the hero problem by a rule (`choose_problem`): greedy wrong, beam search right, best-of-N
     at the same budget wrong if possible, then the most wrong answers among beam search's final
     leaves (the verifier had to choose), then the first such problem;
  4. serves the app on that database (the sidebar shows its path, WORKDIR/thinktrace.db) and takes
     the pictures, plus an animated GIF of that tree growing (the Tree page's replay slider).

Seeded: a second run gives the same pictures (a picture whose pixels all lie within NOISE levels of
the file's is not rewritten, and the script says which changed). The Learn picture shows lesson 3
(seeded); lesson 4's beam search draws without a seed on the Learn page, a new tree on each click. Durations are measured, so they differ between runs: no picture
shows one (Compare's "s / problem" column is hidden with the table's own column menu; the Home and
Library tables' time columns lie beyond the picture's width; the Run picture shows the form).

Measured (2026-12-01, a 2-core CPU machine shared with other work): 183 s from nothing into an empty
docs/screenshots/ (about 85 s of runs, the rest the app and the browser), 186 s for a second run, which
rewrote no picture: every picture matched within 1/255 on at most 19 pixels (table corners), and the
GIF byte for byte. Two earlier full runs gave the same pictures too (within the same tolerance), but
for the Learn picture, which then showed lesson 4.

Options: --out (default docs/screenshots), --workdir (default /tmp/thinktrace; its thinktrace.db is
the path the pictures show), --port (default 8501: the share links in the pictures show it),
--pictures-only (reuse the runs the last full run left in WORKDIR).
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinktrace import app_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--font-render-hinting=none", "--force-color-profile=srgb"]
WIDTH = 1400
DATASET, LIMIT, SEED = "arith:4", 20, 0
STRATEGIES, BUDGETS, BEAM_WIDTH = "self_consistency,best_of_n,beam_search", "1,2,4,8", 2
TOP = 8  # the budget whose runs the Tree, Verifier and Compare pictures show
PINNED_CLOCK = datetime(2026, 1, 15, 9, 0, tzinfo=timezone.utc)  # the first run's creation time in the pictures
NAMESPACE = uuid.UUID("0c6f7a43-3c2e-4a7d-9a43-5b1f2c7e9d10")  # run id = uuid5(NAMESPACE, "run:" + name)
MARKER = ".thinktrace-screenshots"  # a workdir this script made (and may empty again)
# Each picture's height (the width is WIDTH): fixed, so the pictures keep their size.
HEIGHTS = {"home": 1000, "run": 1000, "tree": 1100, "verifier": 2080, "compare": 2100, "budget": 1850,
           "library": 1200, "learn": 1100}
GIF_WIDTH = 760  # the animation is scaled to this width
NOISE = 3  # a picture whose pixels all lie within this many levels (of 255) of the old file's is the same


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- the runs
def cli(*args: str, db: Path) -> str:
    """`python -m reasoning ARGS --db DB`; its stdout (a failure stops the script with its output)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.pop("THINKTRACE_DB", None)
    done = subprocess.run([sys.executable, "-m", "reasoning", *args, "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m reasoning {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done.stdout


def make_runs(scratch: Path) -> None:
    log(f"cot on {DATASET}, {LIMIT} problems")
    cli("run", "--strategy", "cot", "--dataset", DATASET, "--limit", str(LIMIT), "--seed", str(SEED), "--json",
        db=scratch)
    log(f"sweep {STRATEGIES} at N = {BUDGETS} (beam width {BEAM_WIDTH})")
    cli("sweep", "--strategies", STRATEGIES, "--budgets", BUDGETS, "--beam-width", str(BEAM_WIDTH),
        "--dataset", DATASET, "--limit", str(LIMIT), "--seed", str(SEED), db=scratch)


def pin(scratch: Path, db: Path, work: Path) -> None:
    """Every run of the scratch database into `db` through one bundle, with ids from the runs' names and
    creation times from PINNED_CLOCK (a minute apart, in the order they were made; each run keeps its
    measured duration). Nothing else changes: trees, scores, answers and token counts are the runs'."""
    runs = json.loads(cli("runs", "--json", db=scratch))
    bundle = work / "runs.thinktrace.gz"
    cli("export", *[r["id"] for r in runs], "-o", str(bundle), db=scratch)
    with gzip.open(bundle, "rt", encoding="utf-8") as f:
        data = json.load(f)
    names = [r["name"] for r in data["runs"]]
    assert len(set(names)) == len(names), f"run names must be unique to make ids from them: {names}"
    order = sorted(data["runs"], key=lambda r: r["created_at"])
    sweeps: dict[str, dict] = {}
    for i, run in enumerate(order):
        created, moment = datetime.fromisoformat(run["created_at"]), PINNED_CLOCK + timedelta(minutes=i)
        run["id"] = str(uuid.uuid5(NAMESPACE, "run:" + run["name"]))
        run["created_at"] = moment.isoformat()
        if run.get("finished_at"):
            run["finished_at"] = (moment + (datetime.fromisoformat(run["finished_at"]) - created)).isoformat()
        if run.get("sweep"):  # a sweep's id from its name, its time its first run's
            run["sweep"].update(sweeps.setdefault(run["sweep"]["id"], {
                "id": str(uuid.uuid5(NAMESPACE, "sweep:" + run["sweep"]["name"])), "created_at": run["created_at"]}))
    data["created_at"] = PINNED_CLOCK.isoformat()
    data["runs"] = order
    with gzip.open(bundle, "wt", encoding="utf-8") as f:
        json.dump(data, f)
    cli("import", str(bundle), db=db)


def choose(db: Path) -> dict:
    """The runs the pictures show, the hero problem (choose_problem) and its tree's (seq, depth)."""
    from store import Store
    from store.runs import list_runs, run_problems, tree_nodes
    from store.sweeps import list_sweeps

    store = Store(f"sqlite:///{db}")
    runs = list_runs(store)

    def one(strategy: str, n: int | None = None):
        [run] = [r for r in runs if r.strategy == strategy and (n is None or r.n == n)]
        return run

    cot, bon, beam = one("cot"), one("best_of_n", TOP), one("beam_search", TOP)
    greedy = {p.key: p for p in run_problems(store, cot.id)}
    sampled = {p.key: p for p in run_problems(store, bon.id)}
    candidates, trees = [], {}
    for p in run_problems(store, beam.id):
        trees[p.position] = tree_nodes(store, beam.id, p.problem_id)
        candidates.append(dict(position=p.position, node=p.node_seq, gold=p.gold, answers=(
                                   greedy[p.key].answer, sampled[p.key].answer, p.answer),
                               greedy_right=greedy[p.key].correct, best_of_n_right=sampled[p.key].correct,
                               beam_right=p.correct, nodes=len(trees[p.position]),
                               wrong_leaves=sum(n.answer is not None and n.correct is False
                                                for n in trees[p.position])))
    hero = choose_problem(candidates)
    [sweep] = list_sweeps(store)
    return dict(cot=cot.id, best_of_n=bon.id, beam=beam.id, sweep=sweep.id, hero=hero,
                nodes=[(n.seq, n.depth) for n in trees[hero["position"]]])


def choose_problem(candidates: list[dict]) -> dict:
    """The problem the hero picture shows: greedy wrong and beam search right; among those, best-of-N at
    the same budget wrong first (search found what sampling and picking did not), then the most wrong
    answers among beam search's final leaves (the verifier chose among right and wrong), then the
    first. Fails when no problem has greedy wrong and beam search right."""
    found = [c for c in candidates if c["greedy_right"] is False and c["beam_right"] is True]
    if not found:
        raise SystemExit("no problem where greedy is wrong and beam search right: nothing to show")
    return min(found, key=lambda c: (c["best_of_n_right"] is not False, -c["wrong_leaves"], c["position"]))


# ---------------------------------------------------------------- the app and the browser
@contextlib.contextmanager
def serve(db: Path, port: int):
    """The app on `db` at http://localhost:PORT (the address `bash scripts/dev.sh app` gives)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closed one's TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} is in use: stop what listens there or pass --port "
                             "(the share links in the pictures show the port)") from None
    with app_server.serve(db, port, db.parent / "streamlit.log", env={"TZ": "UTC"}, host="localhost", timeout=90) as base:
        yield base


def settle(page, timeout: int = 120_000) -> None:
    """Until the script run ends (Streamlit's status widget goes away), then a moment for plotly."""
    page.wait_for_timeout(500)
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=timeout)


def still(page) -> None:
    """Nothing hovered, nothing focused, charts drawn: the same picture every time."""
    page.mouse.move(WIDTH - 5, 400)  # the main block's right margin: no hover effect there
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(1200)
    settle(page)


def open_page(page, base: str, path: str) -> None:
    page.goto(f"{base}/{path}")
    page.wait_for_selector("h1", timeout=60_000)
    settle(page)


def slider_to(page, slider, value: int) -> None:
    """Move a Streamlit slider to `value` (a select slider: its option's index) with the keyboard."""
    thumb = slider.locator("input[type=range]")
    current = int(thumb.input_value())
    if current == value:
        return
    thumb.focus()
    if value < current:
        thumb.press("Home")
        settle(page)
        current = int(thumb.input_value())
    for _ in range(value - current):
        thumb.press("ArrowRight")
    settle(page)
    got = int(thumb.input_value())
    assert got == value, f"slider at {got}, wanted {value}"


def number_input(page, label: str):
    """The input of the number widget whose label is exactly `label`."""
    boxes = page.locator("[data-testid=stNumberInput]")
    for i in range(boxes.count()):
        if boxes.nth(i).locator("[data-testid=stWidgetLabel]").inner_text().strip() == label:
            return boxes.nth(i).locator("input")
    raise AssertionError(f"no number input labelled {label!r}")


def hide_last_column(page, table, name: str) -> None:
    """Hide a table's last column with its own column menu (hover the header, open the menu, Hide column)."""
    box = table.bounding_box()
    x, y = box["x"] + box["width"] - 18, box["y"] + 17
    page.mouse.move(x - 40, y)
    page.wait_for_timeout(400)
    page.mouse.click(x, y)
    page.get_by_role("menuitem").filter(has_text="Hide column").first.click()
    page.wait_for_timeout(500)
    shown_only(table, lambda headers: name not in headers)


def shown_only(table, check) -> None:
    """Check the column headers a table draws (it draws only those in view)."""
    table.locator("[role=columnheader]").first.wait_for(state="attached")
    headers = [h.strip() for h in table.locator("[role=columnheader]").all_inner_texts()]
    assert headers and check(headers), f"this table shows the columns {headers}"


def capture(page, name: str, out: Path, report: list) -> None:
    """A picture of the page at WIDTH x HEIGHTS[name]."""
    page.set_viewport_size({"width": WIDTH, "height": HEIGHTS[name]})
    still(page)
    write_png(page.screenshot(), out / f"{name}.png", report)


def write_png(data: bytes, path: Path, report: list) -> None:
    """Write a picture unless a file there already shows the same: every pixel within NOISE levels of the
    new one (Chromium's antialiasing of a table's rounded corners can move a few pixels by one level from
    one run to the next). Then the file is left as it is, and git sees no change."""
    import numpy as np
    from PIL import Image

    new = Image.open(io.BytesIO(data)).convert("RGB")
    if not path.exists():
        report.append((path.name, "new"))
    else:
        old = Image.open(path).convert("RGB")
        if old.size != new.size:
            report.append((path.name, f"changed: size {old.size} -> {new.size}"))
        else:
            diff = np.abs(np.asarray(old, dtype=int) - np.asarray(new, dtype=int)).max(axis=2)
            if diff.max() <= NOISE:
                noisy = int((diff > 0).sum())
                report.append((path.name, "same pixels as before" if not noisy else
                               f"same picture as before ({noisy} pixels within {NOISE}/255: antialiasing)"))
                return
            ys, xs = np.nonzero(diff > NOISE)
            report.append((path.name, f"changed: {len(ys)} pixels, within ({xs.min()}, {ys.min()}, {xs.max()}, "
                                      f"{ys.max()})"))
    path.write_bytes(data)


def pictures(base: str, chosen: dict, out: Path) -> list:
    from playwright.sync_api import sync_playwright

    report: list = []
    hero = chosen["hero"]
    problem = hero["position"] + 1
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000}, device_scale_factor=1)
            page.set_default_timeout(60_000)

            log("Home")
            open_page(page, base, "")
            shown_only(page.locator("[data-testid=stDataFrame]").first, lambda h: "run" in h and "time" not in h)
            capture(page, "home", out, report)

            log("Run: the form, set up for the hero's beam search")
            open_page(page, base, "run")
            page.get_by_text("The same run from a terminal").wait_for()
            settle(page)
            level = page.locator("[data-testid=stSlider]").filter(has_text="Difficulty")
            slider_to(page, level, 3)  # a select slider: its index, level 4
            limit = page.get_by_role("spinbutton", name="Problems", exact=True)
            limit.fill(str(LIMIT))
            limit.press("Enter")
            settle(page)
            page.locator("[data-testid=stSelectbox]").filter(has_text="Strategy").click()
            page.get_by_role("option").filter(has_text="beam_search —").first.click()
            settle(page)
            for label, value in (("n", TOP), ("beam width", BEAM_WIDTH)):
                box = number_input(page, label)
                box.fill(str(value))
                box.press("Enter")
                settle(page)
            command = page.locator("[data-testid=stCode]").first.inner_text()
            assert "--strategy beam_search" in command and f"--n {TOP}" in command and "arith:4" in command, command
            capture(page, "run", out, report)

            log(f"Tree: beam search, problem {problem}, its chosen path")
            tree_path = f"tree?run={chosen['beam']}&problem={problem}&node={hero['node']}"
            open_page(page, base, tree_path)
            page.get_by_text(f"Path to node #{hero['node']}").wait_for()
            capture(page, "tree", out, report)

            log("Tree: the replay, frame by frame")
            tree_animation(page, base, tree_path, chosen, out, report)

            log("Verifier")
            open_page(page, base, f"verifier?run={chosen['best_of_n']}")
            page.get_by_text("ROC curve").wait_for()
            capture(page, "verifier", out, report)

            log("Compare")
            open_page(page, base, f"compare?runs={chosen['cot']},{chosen['beam']},{chosen['best_of_n']}"
                                  f"&problem={problem}")
            page.get_by_text("Two trees side by side").wait_for()
            page.set_viewport_size({"width": WIDTH, "height": HEIGHTS["compare"]})
            settle(page)
            hide_last_column(page, page.locator("[data-testid=stDataFrame]").first, "s / problem")
            capture(page, "compare", out, report)

            log("Budget")
            open_page(page, base, f"budget?sweep={chosen['sweep']}&x=samples&by=none")
            page.get_by_role("heading", name="Compute-optimal frontier").wait_for()
            capture(page, "budget", out, report)

            log("Library")
            open_page(page, base, "library")
            shown_only(page.locator("[data-testid=stDataFrame]").first, lambda h: "name" in h and "time" not in h)
            capture(page, "library", out, report)

            log("Learn: lessons 1-3 on the lab pair, live")
            learn(page, base, out, report)
        finally:
            browser.close()
    return report


def tree_animation(page, base: str, path: str, chosen: dict, out: Path, report: list) -> None:
    """The tree as the search grew it: the replay slider at each depth's last node, then the whole tree
    with its chosen path; an animated GIF of the chart alone."""
    from PIL import Image

    open_page(page, base, path)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHTS["tree"]})
    settle(page)
    replay = page.locator("[data-testid=stSlider]").filter(has_text="Replay")
    last = max(seq for seq, _ in chosen["nodes"])
    stops = sorted({0, *(max(s for s, d in chosen["nodes"] if d == depth) for depth in {d for _, d in chosen["nodes"]}),
                    *range(0, last + 1, 2), last})
    frames = []
    chart = page.locator("[data-testid=stPlotlyChart]").first
    for seq in stops:
        slider_to(page, replay, seq)
        still(page)
        frames.append(Image.open(io.BytesIO(chart.screenshot())).convert("RGB"))
    scale = GIF_WIDTH / frames[-1].width
    size = (GIF_WIDTH, round(frames[-1].height * scale))
    frames = [f.resize(size, Image.LANCZOS) for f in frames]
    palette = frames[-1].quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    durations = [400] * (len(frames) - 1) + [3000]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    target = out / "tree-replay.gif"
    if target.exists() and same_frames(target, buffer.getvalue()):
        report.append((target.name, "same frames as before"))
    else:
        report.append((target.name, "new" if not target.exists() else "changed"))
        target.write_bytes(buffer.getvalue())


def same_frames(path: Path, data: bytes) -> bool:
    """Whether an animation shows the same frames (each pixel within NOISE levels), for as long, as the file."""
    import numpy as np
    from PIL import Image, ImageSequence

    if path.read_bytes() == data:
        return True
    old, new = Image.open(path), Image.open(io.BytesIO(data))
    if (old.size, old.n_frames) != (new.size, new.n_frames):
        return False
    for a, b in zip(ImageSequence.Iterator(old), ImageSequence.Iterator(new)):
        if a.info.get("duration") != b.info.get("duration"):
            return False
        if np.abs(np.asarray(a.convert("RGB"), dtype=int) - np.asarray(b.convert("RGB"), dtype=int)).max() > NOISE:
            return False
    return True


def learn(page, base: str, out: Path, report: list) -> None:
    """The Learn page mid-way: lesson 1 (greedy vs 16 samples, seeded) run, which fills lessons 2 and 3;
    the picture shows lesson 3, the verifier and best-of-N with the checker's verdicts. (Lesson 4's beam
    search draws without a seed, a new tree on each click, so it would not give the same picture twice.)"""
    open_page(page, base, "learn")
    page.get_by_role("button", name="Answer greedily, then sample 16 paths").click()
    page.get_by_text("A path the checker stopped").wait_for(timeout=180_000)
    settle(page)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHTS["learn"]})
    settle(page)
    page.evaluate("""() => {  // lesson 3's heading at the top of the picture
        const h = [...document.querySelectorAll('h2')].find(e => e.textContent.startsWith('3 · A verifier'));
        const main = document.querySelector('[data-testid=stMain]');
        main.scrollTop += h.getBoundingClientRect().top - 8;
    }""")
    still(page)
    write_png(page.screenshot(), out / "learn.png", report)


# ---------------------------------------------------------------- main
def fresh_workdir(work: Path) -> None:
    """An empty WORKDIR: one this script made before is emptied; anything else there is refused."""
    if work.exists():
        if not (work / MARKER).exists() and any(work.iterdir()):
            raise SystemExit(f"{work} exists and was not made by this script: pass another --workdir")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("made by scripts/screenshots.py; emptied on its next run\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/thinktrace"))
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--pictures-only", action="store_true",
                        help="reuse the runs of the last full run in WORKDIR: take the pictures only")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    started = time.time()
    work = args.workdir.resolve()
    scratch, db = work / "scratch.db", work / "thinktrace.db"
    if args.pictures_only:
        if not (work / MARKER).exists() or not db.exists():
            raise SystemExit(f"--pictures-only needs the database a full run left in {work}")
    else:
        fresh_workdir(work)
        make_runs(scratch)
        pin(scratch, db, work)
        for path in work.glob("scratch.db*"):
            path.unlink()
    chosen = choose(db)
    hero = chosen["hero"]
    greedy, sampled, searched = hero["answers"]
    log(f"hero (the README's caption describes it): problem {hero['position'] + 1}, gold {hero['gold']}; greedy "
        f"answers {greedy}, best-of-{TOP} {sampled} ({'wrong' if hero['best_of_n_right'] is False else 'right'}), "
        f"beam search {searched} ({hero['nodes']} nodes, {hero['wrong_leaves']} wrong final leaves)")
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(db, args.port) as base:
        report = pictures(base, chosen, args.out)
    made = {name for name, _ in report}
    for stale in sorted(args.out.iterdir()):
        if stale.suffix in (".png", ".gif", ".webp") and stale.name not in made:
            stale.unlink()
            report.append((stale.name, "removed (no longer made)"))
    for name, what in report:
        print(f"  {name}: {what}")
    log(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
