"""Flows as data: the step tables of process-flows.md in YAML, validated at load, expanded for N wafers.

A flow is a list of step specs and `repeat` blocks. A repeat block runs once for every wafer above the
lowermost (`current` = that wafer, `below` = the one under it), which is how a 2-8 wafer stack is built
from one table. Each spec names its tool kind and a recipe that must validate against that kind's
recipe model, so a value outside a kind's range is refused when the file is loaded, not at the tool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from drivers.errors import ConfigError
from drivers.kinds import KINDS
from drivers.tool import Recipe
from drivers.validation import read_yaml
from sequencer.effects import Effect, Face, check_refs

FLOW_DIR = Path(__file__).resolve().parents[1] / "configs" / "flows"
WAFER_RANGE = (2, 8)  # seed 001: "generally about 2 to 8 and is preferably 4"
Structure = Literal["stack", "csp"]  # stack: seed 000/001 claims 1-7; csp: seed 002's own rules
WaferRef = Literal["lowermost", "uppermost", "current", "below"]


def allowed(model: type[BaseModel], field: str) -> str:
    """'allowed 10-75' / 'allowed one of [...]' for a model field, from its declared bounds."""
    info = model.model_fields.get(field)
    if info is None:
        return f"allowed fields: {', '.join(model.model_fields)}"
    lo = hi = None
    for meta in info.metadata:
        if isinstance(meta, Ge | Gt):
            lo = meta.ge if isinstance(meta, Ge) else meta.gt
        if isinstance(meta, Le | Lt):
            hi = meta.le if isinstance(meta, Le) else meta.lt
    if lo is not None or hi is not None:
        return f"allowed {lo if lo is not None else '-inf'}-{hi if hi is not None else 'inf'}"
    args = getattr(info.annotation, "__args__", None)
    return f"allowed one of {list(args)}" if args else ""


def recipe_problems(model: type[Recipe], exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
        field = loc[0] if loc else ""
        got = err.get("input")
        got_text = "" if isinstance(got, dict | list) or not field else f" (got {got!r})"
        hint = allowed(model, field) if field else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"recipe{'.' + field if field else ''}: {msg}{got_text}" + (f"; {hint}" if hint else ""))
    return out


class StepSpec(BaseModel):
    """One row of a flow table (or one tool operation of a multi-tool row: A2a, A2b, ...)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    id: str = Field(pattern=r"^[A-Z][0-9]+[a-z]?$")
    fig: str
    title: str
    kind: str | None = None
    recipe: Any = None  # a mapping in YAML; the kind's recipe model instance after validation
    wafer: WaferRef
    face: Face | None = None
    before_bond: bool = Field(default=False, description="runs on the wafer before it joins the stack")
    when: Literal["always", "uppermost", "not_uppermost"] = "always"
    effect: Effect = Field(default_factory=Effect)

    @model_validator(mode="after")
    def _recipe(self) -> Self:
        where = f"step {self.id}"
        if self.kind is None:
            if self.recipe is not None:
                raise ValueError(f"{where}: a recipe needs a kind")
            problems = check_refs(self.effect, None, set(), set())
        else:
            tool = KINDS.get(self.kind)
            if tool is None:
                raise ValueError(f"{where}: kind {self.kind!r} not one of {sorted(KINDS)}")
            if not isinstance(self.recipe, dict | tool.recipe_model):
                raise ValueError(f"{where} ({self.kind}): recipe: a mapping of {tool.recipe_model.__name__}")
            try:
                self.recipe = tool.recipe_model.model_validate(self.recipe)
            except ValidationError as exc:
                raise ValueError("; ".join(f"{where} ({self.kind}): {p}" for p in
                                           recipe_problems(tool.recipe_model, exc))) from None
            problems = check_refs(self.effect, self.kind, set(tool.recipe_model.model_fields),
                                  set(tool.result_model.model_fields))
        for action in ("layer", "plate", "remove", "update", "planarize"):
            part = getattr(self.effect, action)
            if part is not None and part.face is None and self.face is None:
                problems.append(f"effect.{action}.face: needed (the step has no face)")
        if problems:
            raise ValueError("; ".join(f"{where}: {p}" for p in problems))
        return self


class RepeatSpec(BaseModel):
    """Steps run once per wafer above the lowermost, bottom to top."""

    model_config = ConfigDict(extra="forbid")
    repeat: Literal["above_lowermost"]
    steps: list[StepSpec] = Field(min_length=1)


def _item_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "repeat" if "repeat" in value else "step"
    return "repeat" if isinstance(value, RepeatSpec) else "step"


FlowItem = Annotated[
    Annotated[StepSpec, Tag("step")] | Annotated[RepeatSpec, Tag("repeat")], Discriminator(_item_tag)
]


class WaferCount(BaseModel):
    """Stack sizes a flow runs (2-8); a `structure: csp` flow runs exactly one wafer (Flow._single)."""

    model_config = ConfigDict(extra="forbid")
    default: int = Field(default=4, ge=WAFER_RANGE[0], le=WAFER_RANGE[1])
    min: int = Field(default=WAFER_RANGE[0], ge=WAFER_RANGE[0], le=WAFER_RANGE[1])
    max: int = Field(default=WAFER_RANGE[1], ge=WAFER_RANGE[0], le=WAFER_RANGE[1])

    @model_validator(mode="after")
    def _order(self) -> Self:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} outside min-max {self.min}-{self.max}")
        return self


class Substrate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    material: str = "Si"
    thickness_um: float = Field(ge=50, le=725, description="seed 001: about 50-725 um")
    diameter_mm: Literal[200, 300]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    title: str
    source: str
    structure: Structure = "stack"
    wafers: WaferCount = Field(default_factory=WaferCount)
    substrate: Substrate
    steps: list[FlowItem] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        """A csp flow (seed 002) is one wafer, below a stack's 2-8: its count is fixed, not validated."""
        if not isinstance(data, dict) or data.get("structure") != "csp":
            return data
        one = {"default": 1, "min": 1, "max": 1}
        if data.get("wafers", one) != one:
            raise ValueError(f"wafers: a csp flow runs exactly one wafer: {one} (got {data['wafers']})")
        return {**data, "wafers": WaferCount.model_construct(default=1, min=1, max=1)}

    @model_validator(mode="after")
    def _ids(self) -> Self:
        seen: set[str] = set()
        for item in self.steps:
            for spec in item.steps if isinstance(item, RepeatSpec) else [item]:
                if spec.id in seen:
                    raise ValueError(f"step {spec.id}: duplicate step id")
                seen.add(spec.id)
                if isinstance(item, StepSpec) and spec.wafer in ("current", "below"):
                    raise ValueError(f"step {spec.id}: wafer {spec.wafer!r} only inside a repeat block")
                if isinstance(item, StepSpec) and spec.when != "always":
                    raise ValueError(f"step {spec.id}: when {spec.when!r} only inside a repeat block")
        return self


@dataclass(frozen=True)
class Step:
    """One executable step of an expanded flow, for one wafer of one stack size."""

    uid: str  # "A1" outside repeat blocks, "<id>.w<k>" inside (k = the step's wafer)
    spec_id: str
    fig: str
    title: str
    kind: str | None
    recipe: Recipe | None
    wafer: int  # 1 = lowermost ... N = uppermost; for a bond the upper wafer, for dicing the uppermost
    face: Face | None
    effect: Effect
    touches: tuple[int, ...] = ()  # every wafer the step acts on (a bond: lower and upper; dicing: all)
    before_bond: bool = False
    final_for: tuple[int, ...] = ()  # wafers whose last step this is: they become PROCESSED
    index: int = 0  # position in the expansion
    stack_size: int = 0

    def face_for(self, face: Face | None) -> Face:
        """The face an effect acts on: its own, else the step's (load-time validation ensures one)."""
        chosen = face or self.face
        if chosen is None:
            raise ValueError(f"step {self.uid}: no face given for its effect")
        return chosen


def _step_label(data: Any, loc: tuple[int | str, ...]) -> str:
    """'step A5' for an error under steps.<i>[.steps.<j>], from the raw YAML."""
    node = data
    label = ""
    try:
        for part in loc:
            node = node[part]
            if isinstance(node, dict) and "id" in node:
                label = f"step {node['id']}"
    except (KeyError, IndexError, TypeError):
        pass
    return label


def _field_hint(loc: tuple[int | str, ...]) -> str:
    """The allowed range of the flow-level field at `loc` (wafers.max, substrate.thickness_um, ...)."""
    model: Any = Flow
    for part in loc[:-1]:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        model = info.annotation if info is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return ""
    return allowed(model, str(loc[-1])) if loc and isinstance(loc[-1], str) else ""


def describe(source: str, data: Any, exc: ValidationError) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"]
                    if p not in ("step", "repeat") and not str(p).startswith("function"))
        label = _step_label(data, loc)
        path = ".".join(str(p) for p in loc) or "<top>"
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = err.get("input")
        got_text = "" if isinstance(got, dict | list) or err["type"] == "value_error" else f" (got {got!r})"
        hint = _field_hint(loc) if err["type"] in ("less_than_equal", "greater_than_equal") else ""
        got_text += f"; {hint}" if hint else ""
        lines.append(f"  - {path}{' (' + label + ')' if label and label not in msg else ''}: {msg}{got_text}")
    return "\n".join(lines)


def flow_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    return FLOW_DIR / f"{text}.yaml"


def load_flow(name_or_path: str | Path) -> Flow:
    """A flow by name (configs/flows/<name>.yaml) or path; ConfigError names file, step, field, range."""
    path = flow_path(name_or_path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(str(path), data, exc)) from None


def _wafer(spec: StepSpec, current: int, n: int) -> int:
    return {"lowermost": 1, "uppermost": n, "current": current, "below": current - 1}[spec.wafer]


def expand(flow: Flow, wafers: int | None = None) -> list[Step]:
    """The flow's steps for a stack of `wafers` (default: the flow's), repeat blocks unrolled."""
    n = flow.wafers.default if wafers is None else wafers
    lo, hi = flow.wafers.min, flow.wafers.max
    if not lo <= n <= hi:
        raise ConfigError(f"flow {flow.name}: {n} wafers is outside the flow's range {lo}-{hi}")
    rows: list[tuple[StepSpec, int, str]] = []
    for item in flow.steps:
        if isinstance(item, StepSpec):
            rows.append((item, _wafer(item, 0, n), item.id))
            continue
        for current in range(2, n + 1):
            for spec in item.steps:
                skip = {"uppermost": current != n, "not_uppermost": current == n, "always": False}
                if skip[spec.when]:
                    continue
                wafer = _wafer(spec, current, n)
                rows.append((spec, wafer, f"{spec.id}.w{wafer}"))
    steps: list[Step] = []
    for index, (spec, wafer, uid) in enumerate(rows):
        if spec.effect.bond is not None and wafer < 2:
            raise ConfigError(f"flow {flow.name}: step {uid}: a bond needs a wafer below wafer {wafer}")
        if spec.effect.dice is not None:
            touches = tuple(range(1, n + 1))
        elif spec.effect.bond is not None:
            touches = (wafer - 1, wafer)
        else:
            touches = (wafer,)
        steps.append(Step(uid, spec.id, spec.fig, spec.title, spec.kind, spec.recipe, wafer, spec.face,
                          spec.effect, touches, spec.before_bond, (), index, n))
    uids = [s.uid for s in steps]
    dupes = sorted({u for u in uids if uids.count(u) > 1})
    if dupes:
        raise ConfigError(f"flow {flow.name}: step uids repeat in the expansion: {dupes}")
    last = {w: i for i, s in enumerate(steps) for w in s.touches}
    return [replace(s, final_for=tuple(w for w in s.touches if last[w] == s.index)) for s in steps]
