"""Helpers of the export stage (`tunewright.export`): merging, parity, model card, hub."""
