"""Traffic scripts: YAML -> validated `Scenario`, with errors that name the line.

The YAML is composed into a node tree first, so every JSON-Schema error (unknown key,
negative rate, wrong type) can be pointed at the line it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
_VALIDATOR = Draft202012Validator(SCHEMA)

PHASE_KINDS = ("viewers", "danmaku", "likes", "host", "buyers", "claimers", "entrants", "reconnect_storm")
CHECK_RE = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.]+)\s*$")


class ScenarioError(ValueError):
    """A script problem, with the 1-based line it is on (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, source: str = "") -> None:
        where = f"{source}:{line}: " if line and source else (f"line {line}: " if line else (f"{source}: " if source else ""))
        super().__init__(where + message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Check:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        value = int(self.value) if self.value == int(self.value) else self.value
        return f"{self.metric} {self.op} {value}"

    def passes(self, actual: float) -> bool:
        return {
            "<=": actual <= self.value,
            ">=": actual >= self.value,
            "==": actual == self.value,
            "!=": actual != self.value,
            "<": actual < self.value,
            ">": actual > self.value,
        }[self.op]


def parse_check(text: str) -> Check:
    m = CHECK_RE.match(text)
    if not m:
        raise ScenarioError(f"check {text!r} must look like `metric <= number`")
    return Check(m.group(1), m.group(2), float(m.group(3)))


@dataclass(frozen=True)
class Phase:
    kind: str
    spec: dict[str, Any]
    line: int

    @property
    def at(self) -> float:
        return float(self.spec.get("at", self.spec.get("from", 0)))


@dataclass
class Scenario:
    name: str
    room: str
    duration_s: float
    phases: list[Phase]
    targets: list[str] = field(default_factory=list)
    unique_room: bool = False
    create_room: bool = True
    products: list[dict[str, Any]] = field(default_factory=list)
    drain_s: float = 2.0
    codec: str = "msgpack"
    workers: int | None = None
    connections_per_worker: int = 1000
    connect_concurrency: int = 200
    reply_timeout_s: float = 10.0
    checks: list[Check] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def of(self, kind: str) -> list[Phase]:
        return [p for p in self.phases if p.kind == kind]

    @property
    def max_viewers(self) -> int:
        return max((int(p.spec["ramp_to"]) for p in self.of("viewers")), default=0)


# -- line tracking -------------------------------------------------------------------
def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            out[path + (k,)] = key.start_mark.line + 1
            _lines(value, path + (k,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out)


def _line_of(lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 0)


def _schema_error(err: Any, lines: dict[tuple[Any, ...], int], source: str) -> ScenarioError:
    path = tuple(err.absolute_path)
    where = "/".join(str(p) for p in path) or "top level"
    message = err.message
    if err.validator == "additionalProperties":
        # Point at the unexpected key itself, and say which keys are allowed.
        unexpected = re.findall(r"'([^']+)'", message)
        allowed = sorted(err.schema.get("properties", {}))
        if unexpected:
            path = path + (unexpected[0],)
            message = f"unknown key {unexpected[0]!r} in {where}; allowed: {', '.join(allowed)}"
    elif err.validator in ("minimum", "exclusiveMinimum"):
        message = f"{where} must be >= {err.validator_value}" if err.validator == "minimum" else f"{where} must be > {err.validator_value}"
        message += f", got {err.instance}"
    elif err.validator in ("minProperties", "maxProperties") and len(path) == 2 and path[0] == "phases":
        message = f"phase {path[1]} must have exactly one kind: one of {', '.join(PHASE_KINDS)}"
    elif err.validator == "pattern" and path and path[0] == "checks":
        message = f"check {err.instance!r} must look like `metric <= number` (operators <= >= == != < >)"
    else:
        message = f"{where}: {message}"
    return ScenarioError(message, _line_of(lines, path), source)


def load(text: str, source: str = "") -> Scenario:
    """Parse and validate a traffic script; raises ScenarioError naming the line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ScenarioError(f"bad YAML: {exc.problem or exc}", line, source) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"bad YAML: {exc}", 0, source) from None
    if root is None or not isinstance(data, dict):
        raise ScenarioError("a traffic script is a YAML map (room, duration_s, phases, ...)", 1, source)
    lines: dict[tuple[Any, ...], int] = {}
    _lines(root, (), lines)
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: _line_of(lines, tuple(e.absolute_path)))
    if errors:
        # The most specific error on the earliest line is the useful one.
        raise _schema_error(errors[0], lines, source)
    phases = []
    for i, item in enumerate(data["phases"]):
        kind, spec = next(iter(item.items()))
        phases.append(Phase(kind, dict(spec), _line_of(lines, ("phases", i))))
    _check_semantics(data, phases, lines, source)
    targets = data.get("target") or []
    if isinstance(targets, str):
        targets = [targets]
    checks = []
    for i, text_ in enumerate(data.get("checks", [])):
        try:
            checks.append(parse_check(text_))
        except ScenarioError as exc:
            raise ScenarioError(exc.message, _line_of(lines, ("checks", i)), source) from None
    return Scenario(
        name=data.get("name", Path(source).stem if source else "scenario"),
        room=data["room"],
        duration_s=float(data["duration_s"]),
        phases=phases,
        targets=list(targets),
        unique_room=bool(data.get("unique_room", False)),
        create_room=bool(data.get("create_room", True)),
        products=list(data.get("products", [])),
        drain_s=float(data.get("drain_s", 2.0)),
        codec=data.get("codec", "msgpack"),
        workers=data.get("workers"),
        connections_per_worker=int(data.get("connections_per_worker", 1000)),
        connect_concurrency=int(data.get("connect_concurrency", 200)),
        reply_timeout_s=float(data.get("reply_timeout_s", 10.0)),
        checks=checks,
        raw=data,
    )


def _check_semantics(data: dict[str, Any], phases: list[Phase], lines: dict[tuple[Any, ...], int], source: str) -> None:
    """What the schema cannot say: names must be defined before use, windows must fit."""
    named: dict[str, str] = {}
    products = {p["id"] for p in data.get("products", [])}
    needs = {"start_sale": ("product",), "push_card": ("product",), "drop_coupon": ("amount", "quantity"),
             "start_lottery": ("winners",), "draw_lottery": ("lottery",), "notice": ("text",), "start_poll": ("options",)}
    creates = {"start_sale": "sale", "drop_coupon": "coupon", "start_lottery": "lottery", "start_poll": "poll"}
    for i, phase in enumerate(sorted(phases, key=lambda p: p.at)):
        s = phase.spec
        if "from" in s and "to" in s and s["to"] < s["from"]:
            raise ScenarioError(f"{phase.kind}: `to` ({s['to']}) is before `from` ({s['from']})", phase.line, source)
        if phase.kind == "host":
            action = s["action"]
            for key in needs.get(action, ()):
                if key not in s:
                    raise ScenarioError(f"host action {action} needs `{key}`", phase.line, source)
            if "product" in s and products and s["product"] not in products:
                raise ScenarioError(f"host action {action}: product {s['product']!r} is not in `products`", phase.line, source)
            if action == "draw_lottery" and named.get(s["lottery"]) != "lottery":
                raise ScenarioError(f"draw_lottery: no earlier start_lottery named {s['lottery']!r}", phase.line, source)
            if action in creates:
                named[s.get("as", f"{creates[action]}{len(named) + 1}")] = creates[action]
        ref = {"buyers": ("sale", "sale"), "claimers": ("coupon", "coupon"), "entrants": ("lottery", "lottery")}.get(phase.kind)
        if ref:
            key, kind = ref
            if named.get(s[key]) != kind:
                raise ScenarioError(f"{phase.kind}: no earlier host action creating a {kind} `as: {s[key]}`", phase.line, source)
    for phase in phases:
        end = phase.spec.get("to", phase.spec.get("at", 0))
        if end > data["duration_s"]:
            raise ScenarioError(f"{phase.kind} at {end}s is after duration_s ({data['duration_s']})", phase.line, source)


def load_file(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read: {exc.strerror}", 0, str(path)) from None
    return load(text, str(path))


# Fields multiplied by `scaled`: every head count, rate and stock, so a scaled run keeps
# the script's shape (e.g. 500 units for 5k buyers stays 1 unit per 10 buyers).
_SCALED = {
    "viewers": ("ramp_to",),
    "danmaku": ("rate",),
    "likes": ("rate",),
    "buyers": ("count",),
    "claimers": ("count",),
    "entrants": ("count",),
    "reconnect_storm": ("count",),
    "host": ("stock", "quantity"),
}


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """The same script with viewers, rates, buyers and stock multiplied by `factor`."""
    if factor <= 0:
        raise ScenarioError("--scale must be > 0")
    phases = []
    for phase in scenario.phases:
        spec = dict(phase.spec)
        for key in _SCALED.get(phase.kind, ()):
            if key in spec:
                value = spec[key] * factor
                spec[key] = value if key == "rate" else max(1, round(value))
        phases.append(Phase(phase.kind, spec, phase.line))
    out = Scenario(**{**scenario.__dict__, "phases": phases})
    return out
