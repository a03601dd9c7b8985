"""Declarative traveler effects: what a COMPLETED step does to the wafer stack, written as data in the flow.

A flow step names its effect (`layer`, `plate`, `bond`, `thin`, ...) instead of carrying code, so the
same YAML drives the run (values measured by the tool) and the dry check (nominal values). A numeric
value is a number or a reference: `result.<field>` (what the tool measured) or `recipe.<field>` (the
setpoint). References carry their unit in the field name, as the drivers do: `_um` as is, `_nm` / 1000.
A `result.` reference needs a `nominal` for check mode, where no tool runs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from drivers.tool import Recipe

Face = Literal["front", "back"]
Role = Literal[
    "pad", "insulating", "passivation", "barrier", "seed", "rewiring", "via_electrode", "post",
    "post_barrier", "resist", "resin_seal", "protective_film", "heat_radiation", "solder",
    # seed 002 (structure: csp): two insulating resin layers around solder terminals on the re-wiring.
    # A terminal's thickness is its height; its material is its solder alloy.
    "first_resin", "second_resin", "first_terminal", "second_terminal",
    # seed 003 (structure: flipchip): bumps on a chip's active face (thickness = height), a carrier's
    # lands (chip-side `pad`, outer-face `ball_pad`), the chip-to-chip adhesive, the resin between the
    # carriers (recorded on carrier 1's chip side, as thick as the gap it fills).
    "bump", "ball_pad", "adhesive", "encapsulant",
]
CSP_RESINS = ("first_resin", "second_resin")  # stacked from the terminal sites up
CSP_TERMINALS = ("first_terminal", "second_terminal")  # stand on the terminal sites
PLANAR_RESINS = (*CSP_RESINS, "resin_seal")  # a polish cuts these down to its height ...
PLANAR_FEATURES = (*CSP_TERMINALS, "post")  # ... and these too, exposing them once it reaches their tops
Number = float | str  # a value in um, or "result.<field>" / "recipe.<field>"
# The value used in check mode; `nominal_um` is accepted as a synonym.
Nominal = Annotated[Number | None, Field(validation_alias=AliasChoices("nominal", "nominal_um"))]
REF = re.compile(r"^(result|recipe)\.([a-z][a-z0-9_]*)$")
UNIT_SCALE = {"_um": 1.0, "_nm": 0.001}


class _Effect(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class LoadLayer(_Effect):
    """A layer the wafer already carries when it enters the line (a device-packaged wafer)."""

    face: Face
    material: str
    role: Role
    thickness_um: float = Field(gt=0, le=1000)


class LoadEffect(_Effect):
    """The wafer enters the line as the base of the stack; overrides the flow's substrate if given."""

    material: str | None = None
    thickness_um: float | None = Field(default=None, ge=50, le=725)
    diameter_mm: Literal[200, 300] | None = None
    layers: list[LoadLayer] = Field(default_factory=list)


class ThinEffect(_Effect):
    """Back-grind / CMP: the wafer's thickness becomes `to`."""

    face: Face = "back"
    to: Number
    nominal: Nominal = None


class BondEffect(_Effect):
    """The step's wafer (upper) is bonded onto the wafer below it through the lower face's top layer.

    Flow D: `onto` names the member it is bonded onto (default: the one below), and a `flip_chip` joint
    goes through the chip's solder bumps (the upper's face) instead of an adhesive on the lower face.
    """

    lower_face: Face = "front"
    upper_face: Face = "back"
    onto: str | None = None
    joint: Literal["adhesive", "flip_chip"] = "adhesive"


class HolesEffect(_Effect):
    """Through-holes etched into the step's wafer (A7); they stop on the insulating layer below."""

    depth_um: Number
    nominal: Nominal = None


class LayerEffect(_Effect):
    """A deposited, coated or laminated layer on one face."""

    face: Face | None = None  # default: the step's face
    material: str  # a name, or "recipe.material" / "recipe.film"
    role: Role
    thickness_um: Number
    nominal: Nominal = None
    lines_holes: bool = Field(default=False, description="also covers the through-hole side walls (A9)")
    covers: Role | None = Field(default=None, description="a thin skin of it covers these features (C5)")
    grade: str | None = Field(default=None, description="a grade of the flow's `materials` (Flow D)")


class PlateEffect(_Effect):
    """Electroplating (metal from the plater recipe); needs a seed layer on the face (a permissive).

    `rewiring_and_via`: the re-wiring layer and the via electrodes are formed in this ONE step (claim 6).
    """

    face: Face | None = None
    role: Literal["pad", "rewiring", "post"]
    thickness_um: Number
    nominal: Nominal = None
    rewiring_and_via: bool = False
    fills_holes: bool = Field(default=False, description="also fills every lined, unfilled hole of the "
                              "member: Flow D's drilled vias, Flow E's re-wiring holes")


class RemoveEffect(_Effect):
    """Strip / etch away every present layer of the given role(s) on a face (they stay in the record)."""

    face: Face | None = None
    role: Role | list[Role]

    def roles(self) -> list[str]:
        return [self.role] if isinstance(self.role, str) else list(self.role)


class UpdateEffect(_Effect):
    """Cure, pattern or otherwise change the top present layer of a role (e.g. cure shrinkage)."""

    face: Face | None = None
    role: Role
    thickness_um: Number | None = None
    nominal: Nominal = None
    cured: bool | None = None
    patterned: bool | None = None


class PlanarizeEffect(_Effect):
    """Grind / polish a face flat at `to` um above the terminal sites (C6) or the re-wiring (Flow E
    15(b)): resin layers and terminals / posts are cut down to it, and a resin skin over the `expose`
    features is cut open once `to` reaches their tops."""

    face: Face | None = None
    to: Number
    nominal: Nominal = None
    expose: Role | None = None


class ReflowEffect(_Effect):
    """Reflow the flip-chip joints of the step's chip (Flow D): the bumps wet the carrier's pads and
    collapse to `height_um`; a joint only conducts once reflowed."""

    height_um: Number
    nominal: Nominal = None


class OpenLayerEffect(_Effect):
    """Open windows through the top present layer of `role` (Flow E 15(e): the back seal over the back
    re-wiring); the windows reach what lies under it only if `depth_um` clears the layer."""

    face: Face | None = None
    role: Role
    depth_um: Number
    nominal: Nominal = None


class EdgeTraceEffect(_Effect):
    """Conductive traces plated on the package edges, one end on the top carrier's ball pads and the
    other on the bottom carrier's (seed 003 claims 7 and 12: the alternative to through vias)."""

    thickness_um: Number
    nominal: Nominal = None


class DiceEffect(_Effect):
    """The stack is cut into packages: nothing at wafer level may follow."""


class Effect(_Effect):
    """Everything a step does to the traveler; several actions may combine (applied in field order)."""

    load: LoadEffect | None = None
    thin: ThinEffect | None = None
    remove: RemoveEffect | None = None
    update: UpdateEffect | None = None
    through_holes: HolesEffect | None = None
    open_holes: HolesEffect | None = None
    layer: LayerEffect | None = None
    plate: PlateEffect | None = None
    planarize: PlanarizeEffect | None = None
    bond: BondEffect | None = None
    reflow: ReflowEffect | None = None
    open_layer: OpenLayerEffect | None = None
    edge_traces: EdgeTraceEffect | None = None
    dice: DiceEffect | None = None

    def actions(self) -> list[str]:
        return [name for name in type(self).model_fields if self.part(name) is not None]

    def part(self, action: str) -> _Effect | None:
        """One action's settings (None when the step does not do it)."""
        value: _Effect | None = self.__dict__.get(action)
        return value


NUMERIC_FIELDS = ("to", "depth_um", "thickness_um", "height_um", "nominal")


def check_refs(
    effect: Effect, kind: str | None, recipe_fields: set[str], result_fields: set[str]
) -> list[str]:
    """Problems with the effect's references for a step of `kind` (empty list when all resolve)."""
    problems: list[str] = []
    for action in effect.actions():
        part = getattr(effect, action)
        measured = False
        for name in (*NUMERIC_FIELDS, "material"):
            value = getattr(part, name, None)
            if not isinstance(value, str) or (name == "material" and not REF.match(value)):
                continue
            where = f"effect.{action}.{name}"
            m = REF.match(value)
            if m is None:
                problems.append(f"{where}: {value!r} is neither a number nor result.<field> / recipe.<field>")
                continue
            source, field = m.groups()
            fields = result_fields if source == "result" else recipe_fields
            if kind is None:
                problems.append(f"{where}: {value!r} needs a tool kind; this step has none")
            elif field not in fields:
                problems.append(f"{where}: {kind} {source} has no field {field!r} (has {sorted(fields)})")
            elif name == "nominal" and source == "result":
                problems.append(f"{where}: {value!r}: a nominal is a number or a recipe. field")
            elif name != "material" and field[-3:] not in UNIT_SCALE:
                problems.append(f"{where}: {value!r} is not a length field (_um or _nm)")
            measured |= source == "result" and name != "nominal"
        if measured and getattr(part, "nominal", None) is None:
            problems.append(f"effect.{action}.nominal: needed for check mode when a value is a result.")
    return problems


def _recipe_value(recipe: Recipe | None, field: str) -> Any:
    if recipe is None or field not in type(recipe).model_fields:
        raise ValueError(f"recipe has no field {field!r}")
    return getattr(recipe, field)


@functools.cache
def parse_ref(value: str) -> tuple[str, str] | None:
    """(source, field) of a `result.<field>` / `recipe.<field>` reference, else None. A flow has a few
    dozen distinct references: each is parsed once, not by the regex engine after every job."""
    m = REF.match(value)
    return (m.group(1), m.group(2)) if m else None


def _ref_um(value: Number, recipe: Recipe | None, result: Mapping[str, Any] | None) -> float | None:
    """A value in um; None for a result reference when no result is available (check mode)."""
    if not isinstance(value, str):
        return float(value)
    ref = parse_ref(value)
    if ref is None:
        raise ValueError(f"bad reference {value!r}")
    source, field = ref
    if source == "result":
        if result is None or field not in result:
            return None
        raw = result[field]
    else:
        raw = _recipe_value(recipe, field)
    return float(raw) * UNIT_SCALE.get(field[-3:], 1.0)


def resolve_um(
    value: Number, nominal: Number | None, recipe: Recipe | None, result: Mapping[str, Any] | None
) -> tuple[float, bool]:
    """(value in um, measured?): the tool's result at run time, the nominal in check mode."""
    measured = _ref_um(value, recipe, result)
    if measured is not None:
        return measured, isinstance(value, str) and value.startswith("result.")
    if nominal is None:
        raise ValueError(f"{value!r} has no result and no nominal")
    fallback = _ref_um(nominal, recipe, None)
    if fallback is None:
        raise ValueError(f"nominal {nominal!r} cannot be a result reference")
    return fallback, False


def resolve_text(value: str, recipe: Recipe | None) -> str:
    """A material name, literal or read from the recipe (`recipe.material`)."""
    ref = parse_ref(value)
    if ref is None:
        return value
    return str(_recipe_value(recipe, ref[1]))
