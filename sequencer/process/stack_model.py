"""The traveler's records: a stack of wafers (or, in Flow D, carriers and chips), their layers on each
face, holes, bonds and E90 states. Split from traveler.py, which writes them (`apply_step`).

Every field added for a later flow has a default, so a traveler JSON from an older run still loads.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class E90State(StrEnum):
    """SEMI E90 substrate processing states (the subset a wafer in a stack can be in)."""

    NEEDS_PROCESSING = "NEEDS_PROCESSING"
    IN_PROCESS = "IN_PROCESS"
    PROCESSED = "PROCESSED"
    ABORTED = "ABORTED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"


BLOCKED = (E90State.UNKNOWN, E90State.ABORTED, E90State.STOPPED, E90State.PROCESSED)


class Record(BaseModel):
    """Who made it: step uid, tool name, ISO time, history index (orders it against bonds and dicing)."""

    step: str
    tool: str
    at: str
    seq: int


class Layer(Record):
    material: str
    role: str
    thickness_um: float
    kind: str | None = None
    measured: bool = False  # thickness from the tool's result (False: nominal)
    cured: bool = False
    patterned: bool = False
    lines_holes: bool = False
    covers: str | None = None  # role of the features its thin skin still covers (C5, until C6 cuts it)
    grade: str | None = None  # a grade of the stack's `materials` (Flow D): its data-sheet figures
    opened_by: str | None = None  # windows opened through it (Flow E 15(e)) ...
    opened_um: float | None = None  # ... this deep
    last_step: str = ""  # uid of the last step that formed or changed it
    removed_by: str | None = None
    removed_at: str | None = None

    @property
    def present(self) -> bool:
        return self.removed_by is None


class Holes(Record):
    """The holes of one wafer (one etch or drill), from etched to via-filled (and, Flow E, revealed)."""

    depth_um: float
    measured: bool = False
    lined_by: str | None = None  # polymer or seed on the side walls (A9, Flow D/E)
    opened_by: str | None = None  # insulating layer opened at the bottom (A10)
    opened_depth_um: float | None = None
    filled_by: str | None = None  # via electrode plated (A12)
    revealed_by: str | None = None  # a back polish thinned the wafer down to the filled via (Flow E)


class Wafer(BaseModel):
    """One member of the stack: a wafer, or (Flow D) a chip population or carrier strip."""

    index: int  # 1 = lowermost
    material: str
    thickness_um: float
    diameter_mm: int  # a strip's length
    width_mm: float | None = None  # a strip's width (None: a round wafer)
    name: str = ""  # the flow's member name (Flow D)
    form: str = "wafer"  # wafer | chip | carrier
    carrier_type: str | None = None  # substrate | tab_tape
    state: E90State = E90State.NEEDS_PROCESSING
    in_stack: bool = False  # loaded as the base, or bonded onto the wafer below (Flow D: loaded)
    thinned_by: list[str] = Field(default_factory=list)  # back-grind / CMP steps, in order
    front: list[Layer] = Field(default_factory=list)
    back: list[Layer] = Field(default_factory=list)
    holes: list[Holes] = Field(default_factory=list)

    def layers(self, face: str) -> list[Layer]:
        return self.front if face == "front" else self.back

    def present(self, face: str, role: str | None = None) -> list[Layer]:
        return [la for la in self.layers(face) if la.present and (role is None or la.role == role)]

    def top(self, face: str) -> Layer | None:
        here = self.present(face)
        return here[-1] if here else None

    def area_cm2(self) -> float:
        if self.width_mm is not None:
            return self.diameter_mm * self.width_mm / 100.0
        return math.pi * (self.diameter_mm / 20.0) ** 2

    @property
    def label(self) -> str:
        return f"{self.name} ({self.index})" if self.name else f"wafer {self.index}"


class Bond(Record):
    lower: int  # the member bonded onto
    upper: int  # the step's member
    lower_face: str
    upper_face: str
    through: str | None  # material of the layer the bond goes through (Flow D flip-chip: the bumps)
    through_role: str | None = None
    through_um: float | None = None
    joint: str = "adhesive"  # adhesive | flip_chip
    reflowed_by: str | None = None  # flip_chip: the reflow that made the solder joints


class Trace(Record):
    """Edge traces joining the ball pads of two carriers (seed 003 claims 7 and 12)."""

    metal: str
    thickness_um: float
    upper: int  # carrier whose ball pads carry one end
    lower: int  # carrier whose ball pads carry the other end
    upper_pads: bool
    lower_pads: bool


class HistoryEntry(Record):
    spec_id: str
    kind: str | None
    wafers: list[int]  # every wafer the step touched
    result: dict[str, Any] | None = None  # what the tool measured; None in check mode


class Stack(BaseModel):
    stack_id: str
    flow: str
    structure: str = "stack"  # the flow's: which finished-structure claims apply (claims.py)
    wafers: list[Wafer]
    materials: dict[str, dict[str, Any]] = Field(default_factory=dict)  # the flow's grades (Flow D)
    bonds: list[Bond] = Field(default_factory=list)
    traces: list[Trace] = Field(default_factory=list)
    diced: bool = False
    diced_by: str | None = None
    diced_seq: int | None = None
    history: list[HistoryEntry] = Field(default_factory=list)

    def wafer(self, index: int) -> Wafer:
        return self.wafers[index - 1]

    @property
    def size(self) -> int:
        return len(self.wafers)

    def completed(self) -> set[str]:
        """uids of the steps applied so far (what a resumed run must not redo)."""
        return {h.step for h in self.history}

    def carriers(self) -> list[Wafer]:
        return [w for w in self.wafers if w.form == "carrier"]

    def chips(self) -> list[Wafer]:
        return [w for w in self.wafers if w.form == "chip"]

    def seq_of(self, spec_or_uid: str) -> int | None:
        """History index of the first step with this uid or spec id (None: not done)."""
        return next((h.seq for h in self.history if spec_or_uid in (h.step, h.spec_id)), None)
