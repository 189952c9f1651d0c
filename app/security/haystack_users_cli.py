"""``twingraph haystack-user``: the users Haystack clients log in as (SCRAM-SHA-256)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.errors import AppError
from app.security.haystack_users import HaystackUsers, users_path
from app.security.scram import DEFAULT_ITERATIONS
from app.security.tokens import Scope
from app.settings import Settings

users_cli = typer.Typer(
    no_args_is_help=True,
    help="Haystack users (SCRAM logins for Haystack clients such as phable or SkySpark).",
)
_err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Overrides TWINGRAPH_DATA_DIR.", show_default=False),
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _store(data_dir: Path | None) -> HaystackUsers:
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    return HaystackUsers(users_path(settings.data_dir))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _fail(exc: AppError) -> None:
    _err.print(f"[red]error[/red] ({exc.code}): {exc.detail}")
    raise typer.Exit(1)


@users_cli.command("add")
def add(
    name: str,
    scope: Annotated[str, typer.Option(help="read, write or admin")] = "read",
    iterations: Annotated[
        int, typer.Option(help="PBKDF2 iterations clients run at each login.")
    ] = DEFAULT_ITERATIONS,
    password_stdin: PasswordStdin = False,
    data_dir: DataDir = None,
) -> None:
    """Add a user; the password is stored only as salted SCRAM keys."""
    try:
        _store(data_dir).add(
            name, _password(password_stdin), Scope.parse(scope), iterations=iterations
        )
    except AppError as exc:
        _fail(exc)
    _err.print(f"Haystack user {name!r} added with the {scope} scope")


@users_cli.command("passwd")
def passwd(name: str, password_stdin: PasswordStdin = False, data_dir: DataDir = None) -> None:
    """Set a user's password."""
    try:
        _store(data_dir).set_password(name, _password(password_stdin))
    except AppError as exc:
        _fail(exc)


@users_cli.command("remove")
def remove(name: str, data_dir: DataDir = None) -> None:
    """Remove a user (tokens it already holds stay valid until revoked)."""
    if not _store(data_dir).remove(name):
        _err.print(f"No Haystack user {name!r}")
        raise typer.Exit(1)


@users_cli.command("list")
def list_users(data_dir: DataDir = None) -> None:
    table = Table("name", "scope", "iterations", "created")
    for u in _store(data_dir).list():
        created = dt.datetime.fromtimestamp(u.created, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(u.name, u.scope.name.lower(), str(u.credentials.iterations), created)
    Console().print(table)
