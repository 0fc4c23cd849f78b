"""What a sound bundle is: the one schema of the bundle format (store/bundle.py reads and writes
the files), its size limits, and the strict JSON reader every imported file goes through.

Bundles and peer files come from strangers, and whatever they hold is later shown to everyone who
opens the app. So every field is checked once, here, for its type, its range and its size
(pydantic models, strict: "4" is not an integer, true is not a number), and the fields that refer
to each other are checked together afterwards: problems named once, one tree per problem whose
parents come before their children (so no cycle and no node unreachable from the root can get in),
results pointing at nodes that exist. The first problem found is reported as one line naming the
field: `runs[0].nodes[12].seq: expected integer`.

The limits below are the only statement of them in the code; docs/formats.md lists them for users.
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Optional, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from reasoning import strict_json
from reasoning.errors import UserError
from reasoning.types import STATUSES
from store.models import RUN_STATUSES, RUNNING

FORMAT = "thinktrace-bundle"
VERSION = 1

# ---------------------------------------------------------------------------------------------
# Limits (read at call time where they are bytes, so a deployment or a test can lower them)

MAX_COMPRESSED_BYTES = 200 * 1024**2  # a bundle file as uploaded or read
MAX_DECOMPRESSED_BYTES = 256 * 1024**2  # its JSON once inflated; also the size limit of a peer file
MAX_JSON_DEPTH = strict_json.MAX_DEPTH  # nesting of arrays and objects anywhere in a file
MAX_RUNS = 1_000  # per bundle
MAX_PROBLEMS = 100_000  # per run
MAX_NODES = 1_000_000  # per run
MAX_QUESTION = 100_000  # characters
MAX_STEP = 200_000  # characters of one node's text
MAX_ANSWER = 10_000  # characters of a gold or extracted answer
MAX_NAME = 500  # characters of a run or sweep name, and of each tag
MAX_TAGS = 100
MAX_LABEL = 1_000  # characters of ids and labels: strategy, model, verifier, dataset, problem key, ...
MAX_NOTES = 100_000  # characters
MAX_ERROR = 10_000  # characters of a run's error
MAX_JSON_BYTES = 1_000_000  # each params, meta and votes object, about its size as JSON
INT64 = strict_json.INT64  # what a database integer holds

# ---------------------------------------------------------------------------------------------
# Strict JSON


def load_json(data: bytes | str, name: str) -> Any:
    """Parse an untrusted JSON document (or one JSONL line) with the engine's strict reader
    (`reasoning.strict_json`: no NaN, Infinity, 1e400, integers beyond 64 bits, deep nesting)."""
    return strict_json.loads(data, name, MAX_JSON_DEPTH)


# ---------------------------------------------------------------------------------------------
# Field types


def _fail(why: str, at: str = "") -> PydanticCustomError:
    """An error whose message is `why`; `at` extends the field's location (a key inside a JSON field)."""
    return PydanticCustomError("thinktrace", "{why}", {"why": why, "at": at})


def _storable(text: str) -> str:
    """Text both databases can hold: no lone surrogate (not encodable) and no NUL (PostgreSQL)."""
    if "\x00" in text:
        raise _fail("contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("is not valid Unicode text (a lone surrogate)") from None
    return text


def _text(limit: int):
    return Annotated[str, Field(max_length=limit), AfterValidator(_storable)]


def _json_object(value: dict) -> dict:
    """A free-form JSON object (params, meta, votes): JSON types only, finite numbers, 64-bit
    integers, storable strings, bounded nesting, about MAX_JSON_BYTES as JSON text. Iterative (nesting
    cannot break it), and stops at the first fault, which it names."""
    stack, size = [(value, (), 1)], 0  # containers only
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, dict):
            pairs = item.items()
            for key in item:
                if not isinstance(key, str):
                    raise _fail("object keys must be strings", _spelled(at))
                _storable_at(key, (*at, key))
                size += len(key) + 4
        elif set(map(type, item)) == {float} and math.isfinite(sum(item)):  # token statistics: at C speed
            pairs, size = (), size + 8 * len(item)
        else:
            pairs = enumerate(item)
        for key, child in pairs:
            if isinstance(child, (dict, list)):
                if depth >= MAX_JSON_DEPTH:
                    raise _fail(f"nested deeper than {MAX_JSON_DEPTH} levels", _spelled((*at, key)))
                stack.append((child, (*at, key), depth + 1))
                size += 2
            elif isinstance(child, str):
                _storable_at(child, (*at, key))
                size += len(child) + 2
            elif isinstance(child, float):
                if not math.isfinite(child):
                    raise _fail("expected a finite number (not NaN or Infinity)", _spelled((*at, key)))
                size += 8
            elif isinstance(child, int) and not isinstance(child, bool):
                if not -INT64 - 1 <= child <= INT64:
                    raise _fail("integer does not fit in 64 bits", _spelled((*at, key)))
                size += 8
            elif child is None or isinstance(child, bool):
                size += 5
            else:
                raise _fail(f"{type(child).__name__} is not a JSON value", _spelled((*at, key)))
        if size > MAX_JSON_BYTES:
            raise _fail(f"larger than the limit of {MAX_JSON_BYTES // 1000} kB")
    return value


def _spelled(at: tuple) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in at)


def _storable_at(text: str, at: tuple) -> None:
    try:
        _storable(text)
    except PydanticCustomError as exc:
        raise _fail(exc.context["why"], _spelled(at)) from None


def _uuid(value: str) -> str:
    try:
        if str(uuid.UUID(value)) == value.lower():
            return value
    except ValueError:
        pass
    raise _fail("expected UUID string")


def _moment(value: Any) -> datetime:
    """ISO text to an aware UTC datetime (the store's convention); naive text is taken as UTC."""
    if not isinstance(value, str) or len(value) > 64:
        raise _fail("expected ISO date-time string")
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise _fail("expected ISO date-time string") from None


def _tags(value: Any) -> Any:
    if isinstance(value, list) and not all(isinstance(tag, str) for tag in value):
        raise _fail("expected array of strings")
    return value


# Settings in params that the program reads back (resume, sweeps, summaries), beside the knobs.
_PARAM_TYPES = {"dataset": (str,), "model": (str,), "verifier": (str, type(None)), "backend": (str,),
                "limit": (int, type(None)), "backend_options": (dict,)}


def _params(params: dict) -> dict:
    """A run's settings are read back by resume and by every summary: each knob must have its
    declared type and range (the knob's own declaration says which), the other settings theirs."""
    from reasoning.config import knobs

    for name, knob in knobs().items():
        if name not in params:
            continue
        value = params[name]
        kind = (int, float) if knob.type is float else knob.type
        if isinstance(value, bool) is not (knob.type is bool) or not isinstance(value, kind):
            raise _fail(f"expected {_KIND_WORDS.get(knob.type, knob.type.__name__)}", f".{name}")
        if isinstance(value, str):
            _storable_at(value, (name,))
        problem = knob.error(value)
        if problem:
            raise _fail(problem, f".{name}")
    for name, kinds in _PARAM_TYPES.items():
        if name in params and (not isinstance(params[name], kinds) or isinstance(params[name], bool)):
            raise _fail(f"expected {' or '.join(_KIND_WORDS.get(k, 'null') for k in kinds)}", f".{name}")
    if isinstance(params.get("limit"), int) and params["limit"] < 1:
        raise _fail("must be at least 1", ".limit")
    return params


_KIND_WORDS = {int: "integer", float: "number", str: "string", bool: "true or false", dict: "object"}

Count = Annotated[int, Field(ge=0, le=INT64)]
Int64 = Annotated[int, Field(ge=-INT64 - 1, le=INT64)]
Number = float  # finite: the models' config refuses NaN and Infinity
Seconds = Annotated[float, Field(ge=0)]
Label = _text(MAX_LABEL)
Name = _text(MAX_NAME)
Answer = _text(MAX_ANSWER)
JsonObject = Annotated[dict, AfterValidator(_json_object)]
Uuid = Annotated[str, AfterValidator(_uuid)]
Moment = Annotated[datetime, BeforeValidator(_moment)]


def _items(limit: int) -> Any:
    """A list field: at most `limit` items, and validation stops at the first bad one."""
    return Field(max_length=limit, fail_fast=True)


class _In(BaseModel):
    # Unknown fields are ignored (a newer minor writer may add some); nothing is coerced.
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", hide_input_in_errors=True)


def _policy_body(value: dict) -> dict:
    """A compute-optimal policy (reasoning/policy.py) as `policy show` and `compute_optimal` read it:
    arms with a strategy and knobs, one share per bin, accuracy and tokens per bin and arm."""
    from reasoning.policy import Policy

    try:
        policy = Policy.from_json(value)
        arms, bins = len(policy.arms), len(policy.shares)
        shaped = (bins == len(policy.edges) + 1 and arms > 0 and all(isinstance(a.strategy, str) and isinstance(a.knobs, dict)
                                                                     and isinstance(a.label, str) for a in policy.arms)
                  and len(policy.accuracy) == len(policy.tokens) == bins
                  and all(len(row) == arms and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row)
                          for row in policy.accuracy + policy.tokens))
    except (KeyError, TypeError, ValueError, AttributeError):
        shaped = False
    if not shaped:
        raise _fail("not a policy: expected arms, edges, shares, accuracy and tokens of matching sizes")
    return value


class PolicyIn(_In):
    id: Uuid
    name: Name = ""
    created_at: Optional[Moment] = None
    oracle: bool = False
    body: Annotated[JsonObject, AfterValidator(_policy_body)]


class SweepIn(_In):
    id: Uuid
    name: Name = ""
    created_at: Optional[Moment] = None
    params: JsonObject = {}
    policies: Annotated[list[PolicyIn], _items(MAX_RUNS)] = []  # compute-optimal policies fitted on it


class ProblemIn(_In):
    position: Count
    dataset: Label
    key: Label
    question: _text(MAX_QUESTION)
    answer: Optional[Answer] = None
    difficulty: Optional[Int64] = None
    meta: JsonObject = {}


class NodeIn(_In):
    problem_dataset: Label
    problem_key: Label
    seq: Count
    parent_seq: Optional[Count]
    depth: Optional[Count] = None  # when absent, its parent's depth + 1 (checked when present)
    text: _text(MAX_STEP)
    tokens: Count = 0
    logprob: Optional[Number] = None
    score: Optional[Number] = None
    path_score: Optional[Number] = None
    status: Literal[STATUSES] = "kept"
    finish_reason: Optional[Label] = None
    answer: Optional[Answer] = None
    correct: Optional[bool] = None
    iteration: Optional[Count] = None
    meta: JsonObject = {}


class ResultIn(_In):
    problem_dataset: Label
    problem_key: Label
    position: Optional[Count] = None  # when absent, its problem's position (checked when present)
    node_seq: Optional[Count] = None
    answer: Optional[Answer] = None
    correct: Optional[bool] = None
    tokens: Count = 0
    model_calls: Count = 0
    verifier_calls: Count = 0
    wall_seconds: Seconds = 0.0
    votes: JsonObject = {}
    meta: JsonObject = {}


class RunIn(_In):
    id: Uuid
    name: Name = ""
    created_at: Optional[Moment] = None
    finished_at: Optional[Moment] = None
    status: Literal[RUN_STATUSES] = RUNNING
    strategy: Label
    params: Annotated[JsonObject, AfterValidator(_params)] = {}
    model_backend: Label = "transformers"
    model_id: Label = ""
    model_name: Label = ""
    model_dtype: Label = ""
    model_params: Count = 0
    verifier: Optional[Label] = None
    verifier_params: Count = 0
    evaluation_only: bool = False
    aggregate: Label = "last"
    dataset: Label = ""
    seed: Int64 = 0
    app_version: Label = ""
    n_problems: Optional[Count] = None  # when absent, the number of problems listed (checked when present)
    tokens: Count = 0
    model_calls: Count = 0
    verifier_calls: Count = 0
    wall_seconds: Seconds = 0.0
    error: Optional[_text(MAX_ERROR)] = None
    tags: Annotated[list[Name], BeforeValidator(_tags), Field(max_length=MAX_TAGS)] = []
    notes: _text(MAX_NOTES) = ""
    sweep: Optional[SweepIn] = None
    problems: Annotated[list[ProblemIn], _items(MAX_PROBLEMS)]
    nodes: Annotated[list[NodeIn], _items(MAX_NODES)]
    results: Annotated[list[ResultIn], _items(MAX_PROBLEMS)]


class BundleIn(_In):
    format: str
    version: int
    runs: Annotated[list[RunIn], _items(MAX_RUNS)]


# ---------------------------------------------------------------------------------------------
# Validation


def parse(doc: Any) -> BundleIn:
    """The validated bundle, or a UserError naming the first bad field."""
    if not isinstance(doc, dict):
        raise UserError("not a ThinkTrace bundle: the top level must be a JSON object")
    if doc.get("format") != FORMAT:
        raise UserError(f"not a ThinkTrace bundle: format is {str(doc.get('format'))[:80]!r}, expected {FORMAT!r}")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError("version: expected integer")
    if version != VERSION:
        newer = " (made by a newer ThinkTrace: upgrade to import it)" if version > VERSION else ""
        raise UserError(f"unsupported bundle version {version}: this ThinkTrace reads version {VERSION}{newer}")
    try:
        bundle = BundleIn.model_validate(doc)
    except ValidationError as exc:
        raise UserError(_describe(exc.errors(include_url=False, include_input=False)[0], BundleIn)) from None
    _check_references(bundle)
    return bundle


def check_problem(problem) -> None:
    """A problem from a local dataset (`reasoning.types.Problem`) fits what a bundle may carry, so a
    run of it can be stored, exported and imported: the same rules, one UserError."""
    try:
        ProblemIn.model_validate({"position": 0, "dataset": problem.dataset, "key": problem.key,
                                  "question": problem.question, "answer": problem.answer,
                                  "difficulty": problem.difficulty, "meta": problem.meta})
    except ValidationError as exc:
        where = f"problem {str(problem.key)[:80]!r} of {str(problem.dataset)[:80]}"
        raise UserError(f"{where}: {_describe(exc.errors(include_url=False, include_input=False)[0], ProblemIn)}") from None


_MESSAGES = {
    "missing": "missing", "int_type": "expected integer", "float_type": "expected number",
    "finite_number": "expected a finite number (not NaN or Infinity)", "string_type": "expected string",
    "bool_type": "expected true or false", "dict_type": "expected object", "model_type": "expected object",
    "model_attributes_type": "expected object", "list_type": "expected array",
    "datetime_type": "expected ISO date-time string", "string_unicode": "is not valid Unicode text (a lone surrogate)",
    "literal_error": "expected one of {expected}", "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}", "string_too_long": "longer than the limit of {max_length} characters",
    "too_long": "more than the limit of {max_length} items",
}


def _describe(error: dict, root: type[BaseModel]) -> str:
    ctx = error.get("ctx") or {}
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    if error["type"] == "thinktrace":
        return f"{where}{ctx['at']}: {ctx['why']}"
    template = _MESSAGES.get(error["type"])
    message = template.format(**ctx) if template else error["msg"][:1].lower() + error["msg"][1:]
    if template and template.startswith("expected") and _nullable(root, error["loc"]):
        message += " or null"
    return f"{where}: {message}"


def _nullable(root: type[BaseModel], loc: tuple) -> bool:
    """Whether the field at `loc` also takes null (said in the message, as the format allows it)."""
    kind: Any = root
    for part in loc:
        kind = next((arg for arg in get_args(kind) if arg is not type(None)), kind) if _optional(kind) else kind
        if isinstance(part, int):
            kind = next(iter(get_args(kind)), None)
        elif isinstance(kind, type) and issubclass(kind, BaseModel) and part in kind.model_fields:
            kind = kind.model_fields[part].annotation
        else:
            return False
    return _optional(kind)


def _optional(kind: Any) -> bool:
    return type(None) in get_args(kind)


def _check_references(bundle: BundleIn) -> None:
    """What one field cannot say alone: ids and problems named once, one content per problem, one
    tree per problem (depths filled in), results pointing at real nodes."""
    seen_runs: set[str] = set()
    content: dict[tuple[str, str], tuple[str, str | None]] = {}
    for i, run in enumerate(bundle.runs):
        where = f"runs[{i}]"
        if run.id in seen_runs:
            raise UserError(f"{where}.id: run {run.id} appears twice in the bundle")
        seen_runs.add(run.id)
        positions: dict[tuple[str, str], int] = {}
        for j, problem in enumerate(run.problems):
            at, ref = f"{where}.problems[{j}]", (problem.dataset, problem.key)
            if ref in positions:
                raise UserError(f"{at}.key: problem {ref[1]!r} of {ref[0]!r} is listed twice")
            if problem.position in positions.values():
                raise UserError(f"{at}.position: position {problem.position} is used twice")
            if content.setdefault(ref, (problem.question, problem.answer)) != (problem.question, problem.answer):
                raise UserError(f"{at}: problem {ref[1]!r} of {ref[0]!r} appears twice with a different "
                                f"question or answer")
            positions[ref] = problem.position
        if run.n_problems is None:
            run.n_problems = len(run.problems)
        elif run.n_problems != len(run.problems):
            raise UserError(f"{where}.n_problems: {run.n_problems}, but the run lists {len(run.problems)} problems")
        trees = _check_trees(run, positions, where)
        done: set[tuple[str, str]] = set()
        for j, result in enumerate(run.results):
            at = f"{where}.results[{j}]"
            ref = _problem_ref(result, positions, at)
            if ref in done:
                raise UserError(f"{at}: a second result for problem {ref[1]!r}")
            done.add(ref)
            if result.position is None:
                result.position = positions[ref]
            elif result.position != positions[ref]:
                raise UserError(f"{at}.position: {result.position}, but problem {ref[1]!r} is at position "
                                f"{positions[ref]}")
            if result.node_seq is not None and result.node_seq not in trees.get(ref, {}):
                raise UserError(f"{at}.node_seq: no node with seq {result.node_seq} in problem {ref[1]!r}")


def _check_trees(run: RunIn, positions: dict, where: str) -> dict[tuple[str, str], dict[int, NodeIn]]:
    """Every problem's nodes form one tree: each node's parent exists and was created before it
    (parent_seq < seq), and there is one root. That rules out cycles and unreachable nodes without a
    walk: following parents strictly lowers seq, so it always ends, and only at the one root."""
    trees: dict[tuple[str, str], dict[int, tuple[int, NodeIn]]] = {}
    for j, node in enumerate(run.nodes):
        at = f"{where}.nodes[{j}]"
        tree = trees.setdefault(_problem_ref(node, positions, at), {})
        if node.seq in tree:
            raise UserError(f"{at}.seq: seq {node.seq} is used twice in problem {node.problem_key!r}")
        tree[node.seq] = (j, node)
    for ref, tree in trees.items():
        order = sorted(tree)  # parents first
        roots = []
        for seq in order:
            j, node = tree[seq]
            at, parent = f"{where}.nodes[{j}]", node.parent_seq
            if parent is None:
                roots.append(seq)
            elif parent == seq:
                raise UserError(f"{at}.parent_seq: a node cannot be its own parent (seq {seq})")
            elif parent not in tree:
                raise UserError(f"{at}.parent_seq: no node with seq {parent} in the same problem")
            elif parent > seq:
                raise UserError(f"{at}.parent_seq: {parent} is not below seq {seq}: a parent is created "
                                f"before its children (this also refuses cycles)")
        if len(roots) > 1:
            raise UserError(f"{where}: problem {ref[1]!r} has {len(roots)} root nodes (parent_seq null): "
                            f"node {roots[1]} is not reachable from the root (seq {roots[0]})")
        for seq in order:
            j, node = tree[seq]
            depth = 0 if node.parent_seq is None else tree[node.parent_seq][1].depth + 1
            if node.depth is None:
                node.depth = depth
            elif node.depth != depth:
                raise UserError(f"{where}.nodes[{j}].depth: {node.depth}, but the node is {depth} steps below "
                                f"the root")
    return {ref: {seq: node for seq, (_, node) in tree.items()} for ref, tree in trees.items()}


def _problem_ref(row: NodeIn | ResultIn, positions: dict, at: str) -> tuple[str, str]:
    ref = (row.problem_dataset, row.problem_key)
    if ref not in positions:
        raise UserError(f"{at}.problem_key: problem {ref[1]!r} of {ref[0]!r} is not in the run's problems")
    return ref
