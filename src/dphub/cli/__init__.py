"""The ``dphub`` command: the publisher's Upload Agent and the operator's server tools.

Publisher commands (login, validate, push, info, get) use only :mod:`dphub.client`; the server
commands (serve, user, db) import the server modules when they run, so the client stays light.
"""

from __future__ import annotations

import typer

from dphub.cli import _errors, db, get, info, login, push, serve, user, validate

app = typer.Typer(
    name="dphub",
    help="Publish and read Frictionless Data Packages on a dphub hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (login, validate, push, info, get, serve):
    module.register(app)
app.add_typer(user.app, name="user")
app.add_typer(db.app, name="db")


def main() -> None:
    _errors.run(app)
