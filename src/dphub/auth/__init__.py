"""Auth: users, API keys, session tokens, and the permission checks (``permissions``)."""
