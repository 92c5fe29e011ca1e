"""Intake: the front door (Open311, portal, chatbot, app API, staff entry, photos); see
docs/architecture.md."""
