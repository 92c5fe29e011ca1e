"""Crews: crews, materials, work lists and the field app (docs/architecture.md); built in its own
issue."""
