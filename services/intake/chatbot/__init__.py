"""The chatbot: its webhook (http), the guided conversation and its Spanish texts."""
