"""Expediente: event-sourced case tracking for municipalities."""
