"""Flows as data: the step tables of process-flows.md in YAML, validated at load, expanded for N wafers.

A flow is a list of step specs and `repeat` blocks. A repeat block runs once for every wafer above the
lowermost (`current` = that wafer, `below` = the one under it), which is how a 2-8 wafer stack is built
from one table. Each spec names its tool kind and a recipe that must validate against that kind's
recipe model, so a value outside a kind's range is refused when the file is loaded, not at the tool.
A flow that assembles a package from parts (Flow D) names its `members` and its steps name a member.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from drivers.configs import SHIPPED, find
from drivers.errors import ConfigError
from drivers.kinds import KINDS
from drivers.tool import Recipe
from drivers.validation import read_yaml
from sequencer.process import structures
from sequencer.process.effects import Effect, Face, check_refs
from sequencer.process.flow_errors import describe, recipe_problems
from sequencer.process.members import (
    MEMBER_NAME,
    RESERVED,
    MaterialSpec,
    Member,
    Strip,
    Substrate,
    WaferCount,
)

FLOW_DIR = SHIPPED / "flows"
# stack: seed 000/001 claims 1-7; csp: seed 002's rules; flipchip: seed 003 (members: carriers and
# chips); double_sided: seed 004 (one wafer, both faces packaged)
WaferRef = Literal["lowermost", "uppermost", "current", "below"]
MemberName = Annotated[str, Field(pattern=MEMBER_NAME)]


class StepSpec(BaseModel):
    """One row of a flow table (or one tool operation of a multi-tool row: A2a, A2b, ...)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    id: str = Field(pattern=r"^[A-Z][0-9]+[a-z]?$")
    fig: str
    title: str
    kind: str | None = None
    recipe: Recipe | None = None  # the kind's recipe model (a mapping in YAML, typed by `_typed_recipe`)
    wafer: WaferRef | MemberName  # a member's name in a flow with `members`
    face: Face | None = None
    before_bond: bool = Field(default=False, description="runs on the wafer before it joins the stack")
    when: Literal["always", "uppermost", "not_uppermost"] = "always"
    effect: Effect = Field(default_factory=Effect)

    @model_validator(mode="before")
    @classmethod
    def _typed_recipe(cls, data: Any) -> Any:
        """The recipe mapping becomes the step kind's recipe model, or a message naming step and field."""
        if not isinstance(data, dict) or data.get("recipe") is None:
            return data
        where, kind = f"step {data.get('id')}", data.get("kind")
        if kind is None:
            raise ValueError(f"{where}: a recipe needs a kind")
        tool = KINDS.get(kind)
        if tool is None:
            raise ValueError(f"{where}: kind {kind!r} not one of {sorted(KINDS)}")
        raw = data["recipe"]
        if not isinstance(raw, dict | tool.recipe_model):
            raise ValueError(f"{where} ({kind}): recipe: a mapping of {tool.recipe_model.__name__}")
        try:
            return {**data, "recipe": tool.recipe_model.model_validate(raw)}
        except ValidationError as exc:
            raise ValueError("; ".join(f"{where} ({kind}): {p}" for p in
                                       recipe_problems(tool.recipe_model, exc))) from None

    @model_validator(mode="after")
    def _recipe(self) -> Self:
        where = f"step {self.id}"
        if self.kind is None:
            problems = check_refs(self.effect, None, set(), set())
        else:
            tool = KINDS.get(self.kind)
            if tool is None:
                raise ValueError(f"{where}: kind {self.kind!r} not one of {sorted(KINDS)}")
            if self.recipe is None:
                raise ValueError(f"{where} ({self.kind}): recipe: a mapping of {tool.recipe_model.__name__}")
            problems = check_refs(self.effect, self.kind, set(tool.recipe_model.model_fields),
                                  set(tool.result_model.model_fields))
        problems += _kind_can(self.effect, self.kind)
        e = self.effect
        faced = (("layer", e.layer), ("plate", e.plate), ("remove", e.remove), ("update", e.update),
                 ("planarize", e.planarize))
        for action, part in faced:
            if part is not None and part.face is None and self.face is None:
                problems.append(f"effect.{action}.face: needed (the step has no face)")
        if problems:
            raise ValueError("; ".join(f"{where}: {p}" for p in problems))
        return self


def _kind_can(effect: Effect, kind: str | None) -> list[str]:
    """Every change to the stack but loading the first wafer is a tool's job, and a tool that can."""
    problems = []
    for action in effect.actions():
        if action == "load":
            continue
        able = sorted(k for k, tool in KINDS.items() if action in tool.stack_actions)
        if kind is None:
            problems.append(f"effect.{action}: changes the stack, so needs a tool: kind one of {able}")
        elif kind in KINDS and action not in KINDS[kind].stack_actions:
            problems.append(f"effect.{action}: a {kind} cannot do it; kind one of {able}")
    return problems


class RepeatSpec(BaseModel):
    """Steps run once per wafer above the lowermost, bottom to top."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    repeat: Literal["above_lowermost"]
    steps: list[StepSpec] = Field(min_length=1)


def _item_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "repeat" if "repeat" in value else "step"
    return "repeat" if isinstance(value, RepeatSpec) else "step"


FlowItem = Annotated[
    Annotated[StepSpec, Tag("step")] | Annotated[RepeatSpec, Tag("repeat")], Discriminator(_item_tag)
]


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    title: str
    source: str
    structure: str = Field(default="stack", description="a module of sequencer/process/structures")
    wafers: WaferCount = Field(default_factory=WaferCount)
    substrate: Substrate | None = None  # wafer flows
    members: list[Member] | None = Field(default=None, min_length=2, description="bottom to top")
    strip: Strip | None = None  # member flows: the strip the members ride on
    materials: dict[str, MaterialSpec] = Field(default_factory=dict)
    steps: list[FlowItem] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        """A csp / double_sided flow is one wafer and a flipchip flow is its members, below a stack's 2-8:
        their count is fixed by the structure, not validated against WAFER_RANGE."""
        if not isinstance(data, dict) or not isinstance(data.get("structure"), str):
            return data
        known = structures.names()
        structure = structures.named(data["structure"]) if data["structure"] in known else None
        if structure is None or not (structure.single_wafer or structure.members):
            return data
        members = data.get("members")
        n = len(members) if structure.members and isinstance(members, list) else 1
        fixed = {"default": n, "min": n, "max": n}
        if data.get("wafers", fixed) != fixed:
            what = "exactly one wafer" if n == 1 and not structure.members else "its members"
            raise ValueError(f"wafers: a {data['structure']} flow runs {what}: {fixed} "
                             f"(got {data['wafers']})")
        return {**data, "wafers": WaferCount.model_construct(default=n, min=n, max=n)}

    @model_validator(mode="after")
    def _parts(self) -> Self:
        if self.structure not in structures.names():
            raise ValueError(f"structure: {self.structure!r} is not one of {structures.names()}")
        if structures.named(self.structure).members:
            if self.members is None or self.strip is None:
                raise ValueError("a flipchip flow needs `members` (bottom to top) and `strip`")
            if self.substrate is not None:
                raise ValueError("substrate: a flipchip flow describes its parts in `members`")
            names = [m.name for m in self.members]
            if len(set(names)) != len(names):
                raise ValueError(f"members: names repeat: {names}")
        elif self.members is not None or self.strip is not None:
            raise ValueError(f"members/strip: only a flow of members (flipchip) has them, "
                             f"not {self.structure}")
        elif self.substrate is None:
            raise ValueError("substrate: a wafer flow needs its substrate")
        return self

    @model_validator(mode="after")
    def _ids(self) -> Self:
        seen: set[str] = set()
        names = {m.name for m in self.members or []}
        for item in self.steps:
            for spec in item.steps if isinstance(item, RepeatSpec) else [item]:
                if spec.id in seen:
                    raise ValueError(f"step {spec.id}: duplicate step id")
                seen.add(spec.id)
                if isinstance(item, StepSpec) and spec.wafer in ("current", "below"):
                    raise ValueError(f"step {spec.id}: wafer {spec.wafer!r} only inside a repeat block")
                if isinstance(item, StepSpec) and spec.when != "always":
                    raise ValueError(f"step {spec.id}: when {spec.when!r} only inside a repeat block")
                self._refs(spec, names)
        return self

    def _refs(self, spec: StepSpec, names: set[str]) -> None:
        """Member names and material grades a step refers to must be the flow's own."""
        where = f"step {spec.id}"
        onto = spec.effect.bond.onto if spec.effect.bond is not None else None
        for ref in (spec.wafer, onto):
            if ref is None or (ref in RESERVED and not names):
                continue
            if ref not in names:
                raise ValueError(f"{where}: {ref!r} is not a member of this flow ({sorted(names) or 'none'})"
                                 + ("; a flow with members names them" if ref in RESERVED else ""))
        grade = spec.effect.layer.grade if spec.effect.layer is not None else None
        if grade is not None and grade not in self.materials:
            raise ValueError(f"{where}: grade {grade!r} is not in `materials` ({sorted(self.materials)})")

    def member_index(self, name: str) -> int:
        """1-based position of a member, bottom to top."""
        return [m.name for m in self.members or []].index(name) + 1


@dataclass(frozen=True)
class Step:
    """One executable step of an expanded flow, for one wafer of one stack size."""

    uid: str  # "A1" outside repeat blocks, "<id>.w<k>" inside (k = the step's wafer)
    spec_id: str
    fig: str
    title: str
    kind: str | None
    recipe: Recipe | None
    wafer: int  # 1 = lowermost ... N = uppermost (Flow D: the member's place); a bond's upper wafer
    face: Face | None
    effect: Effect
    touches: tuple[int, ...] = ()  # every wafer the step acts on (a bond: lower and upper; dicing: all)
    before_bond: bool = False
    final_for: tuple[int, ...] = ()  # wafers whose last step this is: they become PROCESSED
    index: int = 0  # position in the expansion
    stack_size: int = 0
    onto: int = 0  # a bond's lower member when the flow names it (`effect.bond.onto`); 0: the one below

    def face_for(self, face: Face | None) -> Face:
        """The face an effect acts on: its own, else the step's (load-time validation ensures one)."""
        chosen = face or self.face
        if chosen is None:
            raise ValueError(f"step {self.uid}: no face given for its effect")
        return chosen


def flow_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path):
        return name_or_path
    return find("flows", text)


def load_flow(name_or_path: str | Path) -> Flow:
    """A flow by name (configs/flows/<name>.yaml) or path; ConfigError names file, step, field, range."""
    path = flow_path(name_or_path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        what = "is empty: expected" if data is None else "expected"
        raise ConfigError(f"{path}: {what} a mapping at the top level, got {type(data).__name__}")
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(str(path), data, exc, Flow)) from None


def _wafer(flow: Flow, spec: StepSpec, current: int, n: int) -> int:
    if flow.members is not None:
        return flow.member_index(spec.wafer)
    return {"lowermost": 1, "uppermost": n, "current": current, "below": current - 1}[spec.wafer]


def _touches(flow: Flow, spec: StepSpec, wafer: int, n: int, groups: list[set[int]]) -> tuple[int, ...]:
    """Every wafer/member the step acts on. In a member flow a step processes the whole assembly its
    member is part of (a bond joins two assemblies): `groups` is updated as bonds are expanded."""
    if flow.members is None:
        if spec.effect.dice is not None:
            return tuple(range(1, n + 1))
        return (wafer - 1, wafer) if spec.effect.bond is not None else (wafer,)
    if spec.effect.dice is not None:
        return tuple(range(1, n + 1))
    mine = next(g for g in groups if wafer in g)
    bond = spec.effect.bond
    if bond is not None:
        onto = flow.member_index(bond.onto) if bond.onto else wafer - 1
        other = next(g for g in groups if onto in g)
        if other is not mine:
            groups.remove(other)
            mine |= other
    return tuple(sorted(mine))


def expand(flow: Flow, wafers: int | None = None) -> list[Step]:
    """The flow's steps for a stack of `wafers` (default: the flow's), repeat blocks unrolled."""
    n = flow.wafers.default if wafers is None else wafers
    lo, hi = flow.wafers.min, flow.wafers.max
    if not lo <= n <= hi:
        raise ConfigError(f"flow {flow.name}: {n} wafers is outside the flow's range {lo}-{hi}")
    rows: list[tuple[StepSpec, int, str]] = []
    for item in flow.steps:
        if isinstance(item, StepSpec):
            rows.append((item, _wafer(flow, item, 0, n), item.id))
            continue
        for current in range(2, n + 1):
            for spec in item.steps:
                skip = {"uppermost": current != n, "not_uppermost": current == n, "always": False}
                if skip[spec.when]:
                    continue
                wafer = _wafer(flow, spec, current, n)
                rows.append((spec, wafer, f"{spec.id}.w{wafer}"))
    steps: list[Step] = []
    groups = [{i} for i in range(1, n + 1)]
    for index, (spec, wafer, uid) in enumerate(rows):
        bond = spec.effect.bond
        if bond is not None and bond.onto is None and wafer < 2:
            raise ConfigError(f"flow {flow.name}: step {uid}: a bond needs a wafer below wafer {wafer}")
        if bond is not None and bond.onto == spec.wafer:
            raise ConfigError(f"flow {flow.name}: step {uid}: {spec.wafer} cannot be bonded onto itself")
        touches = _touches(flow, spec, wafer, n, groups)
        onto = flow.member_index(bond.onto) if bond is not None and bond.onto else 0
        steps.append(Step(uid, spec.id, spec.fig, spec.title, spec.kind, spec.recipe, wafer, spec.face,
                          spec.effect, touches, spec.before_bond, (), index, n, onto))
    uids = [s.uid for s in steps]
    dupes = sorted({u for u in uids if uids.count(u) > 1})
    if dupes:
        raise ConfigError(f"flow {flow.name}: step uids repeat in the expansion: {dupes}")
    last = {w: i for i, s in enumerate(steps) for w in s.touches}
    return [replace(s, final_for=tuple(w for w in s.touches if last[w] == s.index)) for s in steps]
