"""The ``dphub`` command: the publisher's Upload Agent and the operator's server tools.

Publisher commands (login, validate, push, info, get) use only :mod:`dphub.client`; the server
commands (serve, user, db) import the server modules when they run, so the client stays light.
"""

from __future__ import annotations

import typer

from dphub.cli import (
    _errors,
    access,
    admin,
    audit,
    bitstore,
    cat,
    db,
    delete,
    events,
    gc,
    history,
    query,
    quota,
    reprocess,
    search,
    serve,
    signing_key,
    status,
    token,
    trust,
    user,
    webhook,
    worker,
)
from dphub.cli import get as get_command
from dphub.cli import info as info_command
from dphub.cli import login as login_command
from dphub.cli import push as push_command
from dphub.cli import validate as validate_command

app = typer.Typer(
    name="dphub",
    help="Publish and read Frictionless Data Packages on a dphub hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    login_command,
    validate_command,
    push_command,
    info_command,
    get_command,
    status,
    query,
    cat,
    serve,
    worker,
    reprocess,
    access,
    audit,
    trust,
    history,
    events,
    webhook,
    delete,
    gc,
    quota,
):
    module.register(app)
app.add_typer(user.app, name="user")
app.add_typer(db.app, name="db")
app.add_typer(search.app, name="search")
app.add_typer(bitstore.app, name="bitstore")
app.add_typer(token.app, name="token")
app.add_typer(signing_key.app, name="signing-key")
app.add_typer(admin.app, name="admin")


def main() -> None:
    _errors.run(app)
