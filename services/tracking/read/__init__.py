"""Tracking's read side: the report views the projector keeps, and what each audience may read."""
