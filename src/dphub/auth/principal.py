"""Who is asking: a logged-in user, or nobody (``None`` stands for anonymous)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    email: str
    is_admin: bool = False
