"""Traces from other tools, turned into ThinkTrace runs so they can be explored here.

Each reader converts a peer's file into a bundle document (store/bundle.py) and imports it, so a
peer import gets the same validation, one-transaction import and idempotency as a bundle: the run id
is derived from the file's content, and importing the same file twice adds nothing. The formats
and how their fields map are described in docs/formats.md.

- search-and-learn (huggingface/search-and-learn): JSONL rows (a saved HF dataset) with `problem`,
  `answer`, `completions`, `scores` (per completion, per step), `agg_scores` and `pred` /
  `pred_weighted@N` / `pred_maj@N` / `pred_naive@N`. The search tree is gone in these files: each
  completion becomes one chain of steps (split on "\\n\\n") under the question.
- llm-reasoners (maitrix-org/llm-reasoners) visualizer `TreeLog` JSON: `{"logs": [snapshot, ...]}`,
  a snapshot being `{"nodes": {id: {id, data, selected_edge}}, "edges": {id: {id, source, target,
  data}}}` (edges may also be a list). The last snapshot is the tree; the snapshot in which a node
  first appears becomes its `iteration`, so the replay slider follows the search.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import reasoning
from reasoning.answers import extract_answer, is_equiv
from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER, KEPT, SELECTED, TERMINAL
from store import Store, bundle
from store.models import DONE, utcnow

FORMATS = ("search-and-learn", "llm-reasoners")
# Peer imports are parsed in memory as JSON: the same ceiling as a decompressed bundle.
_NAMESPACE = uuid.UUID("5f0c3a52-8d1e-4c1b-9a57-2d3c8f1e6b40")


def import_peer(store: Store, fmt: str, path: str | Path, name: str = "", model: str = "",
                strategy: str | None = None) -> bundle.ImportReport:
    """Convert a peer file into one run and import it (idempotently) into the store."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    data = _read(path)
    if fmt == "search-and-learn":
        doc = from_search_and_learn(data, path.name, name=name, model=model, strategy=strategy or "best_of_n")
    else:
        doc = from_llm_reasoners(data, path.name, name=name, model=model, strategy=strategy or "mcts")
    return bundle.import_bundle(store, doc)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if size > bundle.MAX_DECOMPRESSED_BYTES:
        raise UserError(f"{path} is larger than the {bundle.MAX_DECOMPRESSED_BYTES / 1024**2:.0f} MB import limit")
    return path.read_bytes()


def _run_shell(data: bytes, source: str, fmt: str, name: str, model: str, strategy: str, params: dict) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    stem = Path(source).stem
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"{fmt}:{digest}")),
        "name": name or f"{stem} (from {fmt})",
        "created_at": utcnow().isoformat(),
        "finished_at": None, "status": DONE, "strategy": strategy,
        "params": {**params, "imported_from": fmt, "source_file": source, "source_sha256": digest},
        "model_backend": fmt, "model_id": model or "unknown", "model_name": model or f"unknown ({fmt})",
        "verifier": None, "dataset": f"{stem}#{digest[:8]}", "seed": 0,
        "app_version": reasoning.__version__, "tokens": 0, "tags": [fmt], "notes": "",
        "problems": [], "nodes": [], "results": [],
    }


def _json_lines(data: bytes, source: str) -> list[dict]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of rows is accepted as well
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
        numbered = list(enumerate(rows, start=1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError:
                raise UserError(f"{source} line {number}: not valid JSON") from None
    if not numbered:
        raise UserError(f"{source}: no rows in it")
    for number, row in numbered:
        if not isinstance(row, dict):
            raise UserError(f"{source} line {number}: expected a JSON object per row")
    return [row | {"__line__": number} for number, row in numbered]


# ---------------------------------------------------------------------------------------------
# search-and-learn


def from_search_and_learn(data: bytes, source: str, name: str = "", model: str = "",
                          strategy: str = "best_of_n", delimiter: str = DEFAULT_DELIMITER) -> dict:
    """A bundle document with one run: a problem per row, a chain per completion."""
    rows = _json_lines(data, source)
    n = max(len(row.get("completions") or []) for row in rows)
    run = _run_shell(data, source, "search-and-learn", name, model, strategy,
                     {"n": n, "aggregate": "last", "delimiter": delimiter})
    run["aggregate"] = "last"
    has_scores = False
    for position, row in enumerate(rows):
        where = f"{source} line {row['__line__']}"
        question = row.get("problem", row.get("question"))
        if not isinstance(question, str) or not question:
            raise UserError(f"{where}: missing field 'problem' (a string)")
        completions = row.get("completions")
        if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
            raise UserError(f"{where}: field 'completions' must be a list of strings")
        scores = row.get("scores") or []
        if scores and (len(scores) != len(completions) or not all(_numbers(s) for s in scores)):
            raise UserError(f"{where}: field 'scores' must hold one list of step scores per completion")
        agg = row.get("agg_scores") or []
        if agg and (len(agg) != len(completions) or not _numbers(agg)):
            raise UserError(f"{where}: field 'agg_scores' must hold one number per completion")
        has_scores = has_scores or bool(scores)
        gold = None if row.get("answer") in (None, "") else str(row["answer"])
        gold = extract_answer(gold, allow_fallback=True).value if gold and "\\boxed" in gold else gold
        key = str(row.get("unique_id", row.get("id", position)))
        ref = {"problem_dataset": run["dataset"], "problem_key": key}
        run["problems"].append({"position": position, "dataset": run["dataset"], "key": key, "question": question,
                                "answer": gold, "difficulty": _level(row.get("level")), "meta": {}})
        nodes = [{**ref, "seq": 0, "parent_seq": None, "depth": 0, "text": question, "meta": {}}]
        leaves = []
        token_counts = row.get("completion_tokens")
        for i, completion in enumerate(completions):
            steps = [s.strip() for s in completion.split(delimiter) if s.strip()] or [completion]
            step_scores = list(scores[i]) if scores else []
            tokens = _split_tokens(token_counts[i] if _list_of_ints(token_counts, len(completions)) else 0, steps)
            parent = 0
            for depth, text in enumerate(steps, start=1):
                score = float(step_scores[depth - 1]) if depth - 1 < len(step_scores) else None
                nodes.append({**ref, "seq": len(nodes), "parent_seq": parent, "depth": depth, "text": text,
                              "tokens": tokens[depth - 1], "score": score, "path_score": score, "status": KEPT,
                              "meta": {"sample": i}})
                parent = nodes[-1]["seq"]
            leaf = nodes[-1]
            found = extract_answer(completion)
            leaf.update(status=TERMINAL, finish_reason="eos", answer=found.value,
                        correct=None if gold is None else (found.found and is_equiv(found.value, gold)),
                        path_score=float(agg[i]) if agg else leaf["path_score"])
            if len(step_scores) != len(steps):
                leaf["meta"] = {**leaf["meta"], "score_steps": len(step_scores), "text_steps": len(steps)}
            leaves.append(leaf)
        pred_column, pred = _prediction(row)
        answer = extract_answer(pred).value if isinstance(pred, str) and pred else None
        chosen = _chosen_leaf(leaves, answer)
        if chosen is not None:
            _mark_selected(nodes, chosen)
        run["nodes"].extend(nodes)
        run["results"].append({**ref, "position": position, "node_seq": chosen["seq"] if chosen else None,
                               "answer": answer, "correct": None if gold is None else (answer is not None and is_equiv(answer, gold)),
                               "tokens": sum(nd.get("tokens", 0) for nd in nodes),
                               "meta": {"pred_column": pred_column} if pred_column else {}})
    run["n_problems"] = len(run["problems"])
    run["tokens"] = sum(r["tokens"] for r in run["results"])
    if has_scores:
        run["verifier"] = "prm (search-and-learn)"
    return _document(run)


def _prediction(row: dict) -> tuple[str | None, Any]:
    """`pred` when present, else the weighted, then majority, then naive prediction at the largest N."""
    if row.get("pred") not in (None, "", []):
        pred = row["pred"]
        return "pred", pred[0] if isinstance(pred, list) and pred else pred
    for kind in ("weighted", "maj", "naive"):
        columns = [(int(match.group(1)), col) for col in row
                   if (match := re.fullmatch(rf"pred_{kind}@(\d+)", col)) and row[col] not in (None, "")]
        if columns:
            column = max(columns)[1]
            return column, row[column]
    return None, None


def _chosen_leaf(leaves: list[dict], answer: str | None) -> dict | None:
    """The best-scored completion that carries the predicted answer (search-and-learn does not
    record which one it was)."""
    carriers = [leaf for leaf in leaves if answer is not None and leaf["answer"] is not None
                and is_equiv(leaf["answer"], answer)]
    if not carriers:
        return None
    return max(carriers, key=lambda leaf: (leaf.get("path_score") or 0.0, -leaf["seq"]))


def _split_tokens(total: int, steps: list[str]) -> list[int]:
    """Attribute a completion's token count to its steps in proportion to their length."""
    if total <= 0:
        return [0] * len(steps)
    lengths = [max(1, len(s)) for s in steps]
    shares = [total * length // sum(lengths) for length in lengths]
    shares[-1] += total - sum(shares)
    return shares


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _list_of_ints(values: Any, length: int) -> bool:
    return isinstance(values, list) and len(values) == length and all(isinstance(v, int) for v in values)


def _level(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.search(r"\d+", value) if isinstance(value, str) else None
    return int(match.group(0)) if match else None


def _mark_selected(nodes: list[dict], leaf: dict) -> None:
    by_seq = {n["seq"]: n for n in nodes}
    node = leaf
    while node is not None:
        node["status"] = SELECTED
        node = by_seq.get(node["parent_seq"]) if node["parent_seq"] is not None else None


def _document(run: dict) -> dict:
    return {"format": bundle.FORMAT, "version": bundle.VERSION, "app_version": reasoning.__version__,
            "created_at": utcnow().isoformat(), "runs": [run]}


# ---------------------------------------------------------------------------------------------
# llm-reasoners


def from_llm_reasoners(data: bytes, source: str, name: str = "", model: str = "", strategy: str = "mcts",
                       question: str | None = None) -> dict:
    """A bundle document with one run of one problem: the tree of the last snapshot."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{source}: not a TreeLog JSON file (invalid JSON)") from None
    snapshots = doc.get("logs") if isinstance(doc, dict) and "logs" in doc else doc
    if isinstance(snapshots, dict):
        snapshots = [snapshots]  # a single TreeSnapshot
    if not isinstance(snapshots, list) or not snapshots:
        raise UserError(f"{source}: expected a TreeLog: {{\"logs\": [snapshot, ...]}} with at least one snapshot")
    first_seen: dict[str, int] = {}
    for index, snapshot in enumerate(snapshots):
        nodes, _ = _snapshot_parts(snapshot, f"{source} logs[{index}]")
        for node_id in nodes:
            first_seen.setdefault(node_id, index)
    nodes, edges = _snapshot_parts(snapshots[-1], f"{source} logs[{len(snapshots) - 1}]")
    parent_of, edge_into = {}, {}
    for edge in edges:
        source_id, target_id = str(edge.get("source")), str(edge.get("target"))
        if source_id not in nodes or target_id not in nodes:
            raise UserError(f"{source}: edge {edge.get('id')} joins unknown nodes {source_id} -> {target_id}")
        if target_id in parent_of:
            raise UserError(f"{source}: node {target_id} has two parents: not a tree")
        parent_of[target_id], edge_into[target_id] = source_id, edge
    roots = [node_id for node_id in nodes if node_id not in parent_of]
    if len(roots) != 1:
        raise UserError(f"{source}: expected one root node, found {len(roots)}")
    children: dict[str, list[str]] = {}
    for target_id, source_id in parent_of.items():
        children.setdefault(source_id, []).append(target_id)

    def order(node_id: str) -> tuple:  # creation order: by first snapshot, then by id
        return (first_seen.get(node_id, 0), _id_key(node_id))

    run = _run_shell(data, source, "llm-reasoners", name, model, strategy, {"snapshots": len(snapshots)})
    root_data = nodes[roots[0]].get("data") or {}
    text = question or _text_of(root_data) or f"(question not recorded in {source})"
    ref = {"problem_dataset": run["dataset"], "problem_key": "0"}
    run["problems"].append({"position": 0, "dataset": run["dataset"], "key": "0", "question": text,
                            "answer": None, "meta": {}})
    seq_of: dict[str, int] = {}
    out: list[dict] = []
    queue = [(roots[0], 0)]
    # Breadth-first by creation order, so parents precede children and seq follows the search.
    while queue:
        queue.sort(key=lambda item: order(item[0]))
        node_id, depth = queue.pop(0)
        node = nodes[node_id]
        edge_data = (edge_into.get(node_id) or {}).get("data") or {}
        node_data = node.get("data") or {}
        reward = edge_data.get("reward", edge_data.get("Q"))
        score = float(reward) if _is_number(reward) and 0.0 <= float(reward) <= 1.0 else None
        seq_of[node_id] = len(out)
        body = text if depth == 0 else (_text_of({"action": edge_data.get("action")}) or _text_of(node_data) or "")
        out.append({**ref, "seq": len(out), "parent_seq": seq_of.get(parent_of.get(node_id)) if depth else None,
                    "depth": depth, "text": body, "score": score, "path_score": score,
                    "status": KEPT if children.get(node_id) else TERMINAL, "iteration": first_seen.get(node_id, 0),
                    "meta": {"peer_id": node_id, "node_data": _jsonable(node_data), "edge_data": _jsonable(edge_data)}})
        queue.extend((child, depth + 1) for child in children.get(node_id, []))
    # The selected path: follow each node's `selected_edge` from the root.
    edge_by_id = {str(edge.get("id")): edge for edge in edges}
    chosen, node_id = None, roots[0]
    while True:
        out[seq_of[node_id]]["status"] = SELECTED
        edge = edge_by_id.get(str(nodes[node_id].get("selected_edge")))
        if edge is None or str(edge.get("target")) not in nodes:
            break
        node_id = str(edge["target"])
        chosen = out[seq_of[node_id]]
    answer = extract_answer(chosen["text"], allow_fallback=False).value if chosen else None
    run["nodes"] = out
    run["n_problems"] = 1
    run["results"] = [{**ref, "position": 0, "node_seq": chosen["seq"] if chosen else None, "answer": answer,
                       "correct": None}]
    if any(n["score"] is not None for n in out):
        run["verifier"] = "reward (llm-reasoners)"
    return _document(run)


def _snapshot_parts(snapshot: Any, where: str) -> tuple[dict[str, dict], list[dict]]:
    if not isinstance(snapshot, dict) or "nodes" not in snapshot or "edges" not in snapshot:
        raise UserError(f"{where}: expected a snapshot with 'nodes' and 'edges'")
    raw_nodes, raw_edges = snapshot["nodes"], snapshot["edges"]
    if isinstance(raw_nodes, list):
        raw_nodes = {str(n.get("id")) if isinstance(n, dict) else "?": n for n in raw_nodes}
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise UserError(f"{where}.nodes: expected a non-empty object of nodes")
    nodes = {}
    for key, node in raw_nodes.items():
        if not isinstance(node, dict):
            raise UserError(f"{where}.nodes[{key}]: expected an object with 'id' and 'data'")
        nodes[str(node.get("id", key))] = node
    edges = list(raw_edges.values()) if isinstance(raw_edges, dict) else raw_edges
    if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
        raise UserError(f"{where}.edges: expected a list (or object) of edges")
    return nodes, edges


def _text_of(data: Any) -> str:
    """Readable text for a node's data: a string as-is, a dict's string values (state, action,
    question) one per line, anything else as JSON."""
    if data in (None, "", {}, []):
        return ""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for name in ("question", "action", "state"):
            if name in data and data[name] not in (None, ""):
                return _text_of(data[name])
        parts = [_text_of(v) for v in data.values()]
        return "\n".join(p for p in parts if p)
    if isinstance(data, list):
        return "\n".join(p for p in (_text_of(v) for v in data) if p)
    return json.dumps(data, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _id_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.lstrip("-").isdigit() else (1, 0, node_id)
