"""Producer and operator tools: the client, the voice library, their CLI commands (torch-free)."""
