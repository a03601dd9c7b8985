"""Fault injection: which faults are active on a tool, switchable at run time, seeded.

Link faults (silence, garble, delay, drop) are acted on by the protocol servers; process faults
(alarm mid-run, door open, drift, stuck busy, off-target) by the tool model.
"""

from __future__ import annotations

import random
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FaultKind(StrEnum):
    SILENCE = "silence"  # no reply at all
    GARBLE = "garble"  # reply bytes corrupted
    DELAY = "delay"  # reply delayed by `delay_s` wall seconds
    LINK_DROP = "link_drop"  # connection closed by the tool side
    SEPARATE = "separate"  # HSMS: the tool sends separate.req and closes (other transports: none)
    ERROR_REPLY = "error_reply"  # HSMS: an S9F7 (illegal data) instead of the reply (others: none)
    ALARM = "alarm"  # alarm raised mid-run
    DOOR_OPEN = "door_open"  # door opens mid-run
    DRIFT = "drift"  # a process value drifts out of band
    STUCK_BUSY = "stuck_busy"  # job never finishes
    OFF_TARGET = "off_target"  # result off target


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    kind: FaultKind
    probability: float = Field(default=1.0, ge=0, le=1, description="chance per request/job")
    delay_s: float = Field(default=0.5, ge=0, le=600, description="wall seconds, for delay")
    at_fraction: float = Field(default=0.5, ge=0, le=1, description="when in the job, process faults")
    alarm_id: int = Field(default=900, ge=1, le=65535)
    magnitude: float = Field(default=0.2, ge=0, le=10, description="relative error, off_target/drift")


class FaultSet:
    """The active faults of one emulated tool; deterministic for a given seed."""

    def __init__(self, specs: list[FaultSpec] | None = None, seed: int = 0) -> None:
        self._active: dict[FaultKind, FaultSpec] = {s.kind: s for s in specs or []}
        self._rng = random.Random(seed)

    def set(self, spec: FaultSpec) -> None:
        self._active[spec.kind] = spec

    def clear(self, kind: FaultKind | None = None) -> None:
        if kind is None:
            self._active.clear()
        else:
            self._active.pop(kind, None)

    def get(self, kind: FaultKind) -> FaultSpec | None:
        return self._active.get(kind)

    def fires(self, kind: FaultKind) -> FaultSpec | None:
        """The spec if the fault is active and its probability draw says it happens now."""
        spec = self._active.get(kind)
        if spec is None:
            return None
        if spec.probability >= 1.0 or self._rng.random() < spec.probability:
            return spec
        return None

    def active(self) -> list[FaultKind]:
        return sorted(self._active)
