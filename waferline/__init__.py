"""The composition root: the waferline CLI and the wiring of a line (emulators + drivers)."""
