"""Placeholder: filled in by its own change."""


class ChatbotWebhook:
    pass
