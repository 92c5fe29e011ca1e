"""The notifications service (see ../shared/ARCHITECTURE.md); built in its own issue."""
