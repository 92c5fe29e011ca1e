"""Placeholder: filled in by its own change."""


class Open311Api:
    pass
