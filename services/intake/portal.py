"""Placeholder: filled in by its own change."""


class PortalPages:
    pass
