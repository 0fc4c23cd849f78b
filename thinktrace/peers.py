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
import heapq
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
from store import bundle_schema as schema
from store.models import DONE, utcnow

FORMATS = ("search-and-learn", "llm-reasoners")
_NAMESPACE = uuid.UUID("5f0c3a52-8d1e-4c1b-9a57-2d3c8f1e6b40")


def import_peer(store: Store, fmt: str, path: str | Path, name: str = "", model: str = "",
                strategy: str | None = None) -> bundle.ImportReport:
    """Convert a peer file into one run and import it (idempotently) into the store."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    # Parsed in memory as JSON, like an inflated bundle: the same ceiling, and the same strict reader.
    data = bundle.read_file(path, schema.MAX_DECOMPRESSED_BYTES, "imported files")
    if fmt == "search-and-learn":
        doc = from_search_and_learn(data, path.name, name=name, model=model, strategy=strategy or "best_of_n")
    else:
        doc = from_llm_reasoners(data, path.name, name=name, model=model, strategy=strategy or "mcts")
    try:
        return bundle.import_bundle(store, doc)
    except UserError as exc:  # the bundle's rules, about the run the file became
        raise UserError(f"{path.name}, as a run: {exc}") from None


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
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{source}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    if text.lstrip().startswith("["):  # a JSON array of rows is accepted as well
        numbered = list(enumerate(schema.load_json(text, source), start=1))
    else:
        # "\n" only: str.splitlines would also cut at U+2028 and friends, which JSON strings may hold.
        numbered = [(number, schema.load_json(line, f"{source} line {number}"))
                    for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
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
    run = _run_shell(data, source, "search-and-learn", name, model, strategy,
                     {"n": 1, "aggregate": "last", "delimiter": delimiter})
    run["aggregate"] = "last"
    has_scores = False
    for position, row in enumerate(rows):
        where = f"{source} line {row['__line__']}"
        question, completions, scores, agg, token_counts, gold, key = _sal_row(row, where, position)
        has_scores = has_scores or bool(scores)
        run["params"]["n"] = max(run["params"]["n"], len(completions))
        ref = {"problem_dataset": run["dataset"], "problem_key": key}
        run["problems"].append({"position": position, "dataset": run["dataset"], "key": key, "question": question,
                                "answer": gold, "difficulty": _level(row.get("level")), "meta": {}})
        nodes = [{**ref, "seq": 0, "parent_seq": None, "depth": 0, "text": question, "meta": {}}]
        leaves = []
        for i, completion in enumerate(completions):
            steps = [s.strip() for s in completion.split(delimiter) if s.strip()] or [completion]
            step_scores = list(scores[i]) if scores else []
            tokens = _split_tokens(token_counts[i] if token_counts else 0, steps)
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


def _sal_row(row: dict, where: str, position: int) -> tuple:
    """The fields of one search-and-learn row, each checked before any is used."""
    question = row.get("problem", row.get("question"))
    if not isinstance(question, str) or not question:
        raise UserError(f"{where}: missing field 'problem' (a string)")
    completions = row.get("completions")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise UserError(f"{where}: field 'completions' must be a list of strings")
    scores = row.get("scores") or []
    if scores and (not isinstance(scores, list) or len(scores) != len(completions)
                   or not all(_numbers(s) for s in scores)):
        raise UserError(f"{where}: field 'scores' must hold one list of step scores per completion")
    agg = row.get("agg_scores") or []
    if agg and (not isinstance(agg, list) or len(agg) != len(completions) or not _numbers(agg)):
        raise UserError(f"{where}: field 'agg_scores' must hold one number per completion")
    tokens = row.get("completion_tokens")
    tokens = tokens if _list_of_counts(tokens, len(completions)) else None  # optional: ignored when odd
    gold = row.get("answer")
    if gold is not None and (isinstance(gold, bool) or not isinstance(gold, (str, int, float))):
        raise UserError(f"{where}: field 'answer' must be a string or a number")
    gold = None if gold in (None, "") else str(gold)
    gold = extract_answer(gold, allow_fallback=True).value if gold and "\\boxed" in gold else gold
    key = row.get("unique_id", row.get("id", position))
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise UserError(f"{where}: field 'unique_id' must be a string or an integer")
    return question, completions, scores, agg, tokens, gold, str(key)


def _prediction(row: dict) -> tuple[str | None, Any]:
    """`pred` when present, else the weighted, then majority, then naive prediction at the largest N."""
    if row.get("pred") not in (None, "", []):
        pred = row["pred"]
        return "pred", pred[0] if isinstance(pred, list) and pred else pred
    for kind in ("weighted", "maj", "naive"):
        columns = [(int(match.group(1)), col) for col in row
                   if (match := re.fullmatch(rf"pred_{kind}@(\d{{1,9}})", col)) and row[col] not in (None, "")]
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
    return isinstance(values, list) and all(_is_number(v) for v in values)


def _list_of_counts(values: Any, length: int) -> bool:
    return isinstance(values, list) and len(values) == length and \
        all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _level(value: Any) -> int | None:
    """3, or MATH's "Level 3" (a level of more than nine digits is not one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.search(r"\d{1,9}", value) if isinstance(value, str) else None
    return int(match.group(0)) if match else None


def _mark_selected(nodes: list[dict], leaf: dict) -> None:
    """Mark the path from the root to `leaf`: `depth` steps up, no more."""
    by_seq = {n["seq"]: n for n in nodes}
    node = leaf
    for _ in range(leaf["depth"] + 1):
        node["status"] = SELECTED
        if node["parent_seq"] is None:
            break
        node = by_seq[node["parent_seq"]]


def _document(run: dict) -> dict:
    return {"format": bundle.FORMAT, "version": bundle.VERSION, "app_version": reasoning.__version__,
            "created_at": utcnow().isoformat(), "runs": [run]}


# ---------------------------------------------------------------------------------------------
# llm-reasoners


def from_llm_reasoners(data: bytes, source: str, name: str = "", model: str = "", strategy: str = "mcts",
                       question: str | None = None) -> dict:
    """A bundle document with one run of one problem: the tree of the last snapshot."""
    doc = schema.load_json(data, source)
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
    where = f"{source} logs[{len(snapshots) - 1}]"
    nodes, edges = _snapshot_parts(snapshots[-1], where)
    parent_of, edge_into = {}, {}
    for edge in edges:
        source_id, target_id = _node_id(edge.get("source"), where), _node_id(edge.get("target"), where)
        if source_id not in nodes or target_id not in nodes:
            raise UserError(f"{source}: edge {str(edge.get('id'))[:40]} joins unknown nodes {source_id[:40]} -> "
                            f"{target_id[:40]}")
        if target_id in parent_of:
            raise UserError(f"{source}: node {target_id[:40]} has two parents: not a tree")
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
    text = question or _text_of(nodes[roots[0]].get("data")) or f"(question not recorded in {source})"
    ref = {"problem_dataset": run["dataset"], "problem_key": "0"}
    run["problems"].append({"position": 0, "dataset": run["dataset"], "key": "0", "question": text,
                            "answer": None, "meta": {}})
    seq_of: dict[str, int] = {}
    out: list[dict] = []
    queue = [(order(roots[0]), roots[0], 0)]
    # Breadth-first by creation order, so parents precede children and seq follows the search.
    while queue:
        _, node_id, depth = heapq.heappop(queue)
        node = nodes[node_id]
        edge_data = _object((edge_into.get(node_id) or {}).get("data"))
        node_data = node.get("data")
        reward = edge_data.get("reward", edge_data.get("Q"))
        score = float(reward) if _is_number(reward) and 0.0 <= float(reward) <= 1.0 else None
        seq_of[node_id] = len(out)
        body = text if depth == 0 else (_text_of({"action": edge_data.get("action")}) or _text_of(node_data) or "")
        out.append({**ref, "seq": len(out), "parent_seq": seq_of.get(parent_of.get(node_id)) if depth else None,
                    "depth": depth, "text": body, "score": score, "path_score": score,
                    "status": KEPT if children.get(node_id) else TERMINAL, "iteration": first_seen.get(node_id, 0),
                    "meta": {"peer_id": node_id, "node_data": node_data, "edge_data": edge_data}})
        for child in children.get(node_id, []):
            heapq.heappush(queue, (order(child), child, depth + 1))
    if len(out) != len(nodes):  # the other nodes' parents form a cycle apart from the root
        stray = next(node_id for node_id in nodes if node_id not in seq_of)
        raise UserError(f"{source}: node {stray[:40]} is not reachable from the root (its parents form a cycle)")
    # The selected path: from the root, each node's `selected_edge` down to one of its children. The
    # tree is checked above, so this descends and ends; `seen` bounds it all the same.
    edge_by_id = {str(edge.get("id")): edge for edge in edges}
    chosen, node_id, seen = None, roots[0], set()
    while node_id not in seen:
        seen.add(node_id)
        out[seq_of[node_id]]["status"] = SELECTED
        edge = edge_by_id.get(str(nodes[node_id].get("selected_edge")))
        target = None if edge is None else _node_id(edge.get("target"), where)
        if target is None or parent_of.get(target) != node_id:
            break
        node_id, chosen = target, out[seq_of[target]]
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
    pairs = (list(raw_nodes.items()) if isinstance(raw_nodes, dict) else
             [(None, node) for node in raw_nodes] if isinstance(raw_nodes, list) else [])
    if not pairs:
        raise UserError(f"{where}.nodes: expected a non-empty object (or list) of nodes")
    nodes = {}
    for key, node in pairs:
        if not isinstance(node, dict):
            raise UserError(f"{where}.nodes: expected objects with 'id' and 'data'")
        node_id = _node_id(node.get("id", key), where)
        if node_id in nodes:
            raise UserError(f"{where}.nodes: node id {node_id[:40]} appears twice")
        nodes[node_id] = node
    edges = list(raw_edges.values()) if isinstance(raw_edges, dict) else raw_edges
    if not isinstance(edges, list) or not all(isinstance(e, dict) for e in edges):
        raise UserError(f"{where}.edges: expected a list (or object) of edges")
    return nodes, edges


def _node_id(value: Any, where: str) -> str:
    """A node id as text: llm-reasoners writes integers; strings are accepted, anything else is not an id."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{where}: a node id must be an integer or a string, not {json.dumps(value)[:40]}")
    return str(value)


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _id_key(node_id: str) -> tuple:
    """Numeric ids in numeric order, then the others (ASCII digits only: int("²") fails)."""
    return (0, int(node_id), "") if re.fullmatch(r"-?[0-9]{1,18}", node_id) else (1, 0, node_id)
