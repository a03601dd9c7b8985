"""Stacked wafers with through electrodes (seeds 000/001, Flows A and B): every default of Structure."""

from __future__ import annotations

from sequencer.process.structures.base import Structure


class StackedWafers(Structure):
    name = "stack"


STRUCTURE = StackedWafers()
