"""Who is asking: a logged-in user, or nobody (``None`` stands for anonymous).

A principal carries what its credential allows on top of who it is: the scope of an API key
(``read`` < ``publish`` < ``admin``) and, for a key or exchanged token limited to one package or one
publisher, that limit. A session from a password or single sign-on has the ``admin`` scope and no limit.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("read", "publish", "admin")


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    email: str
    is_admin: bool = False
    scope: str = "admin"
    package: tuple[str, str] | None = None
    """``(owner, name)`` when the credential acts on this one package only."""
    publisher: str | None = None
    """A publisher name when the credential acts on that publisher's packages only."""
    via: str = "session"
    """How the caller proved who they are: ``session``, ``api-key`` or ``trusted-publisher``."""
    api_key_id: int | None = None
    """The API key behind the credential, when there is one: revoking it ends the credential."""

    def has_scope(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def reaches(self, owner: str, name: str | None = None) -> bool:
        """Whether the credential's limit (if any) covers ``owner``'s package ``name``."""
        if self.publisher is not None and self.publisher != owner:
            return False
        if self.package is not None:
            return self.package[0] == owner and name is not None and self.package[1] == name
        return True

    @property
    def limited(self) -> bool:
        return self.package is not None or self.publisher is not None
