"""Tracking: the Report aggregate, its event stream, projections and interfaces."""
