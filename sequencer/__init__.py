"""Sequencer: flows, traveler, interlocks, ISA-88 run control, journal (issue 4)."""
