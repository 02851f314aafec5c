"""Helpers of the export stage (`tunewright.exporting.stage`): merging, parity, model card, hub."""
