"""Emulators: physics per tool kind served over the same protocol profiles as the drivers use."""
