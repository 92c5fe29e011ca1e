"""Notifications: tells citizens and municipal systems of each report step (docs/architecture.md);
built in its own issue."""
