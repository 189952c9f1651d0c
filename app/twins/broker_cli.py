"""``twingraph broker``: MQTT broker logins and the files an external Mosquitto reads.

The broker the platform runs itself (``make run``) keeps its files current on its own;
these commands are for a broker run elsewhere (docker-compose's, or a site's own).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.errors import AppError
from app.settings import Settings

if TYPE_CHECKING:
    from app.twins.broker_auth import BrokerUsers

broker_cli = typer.Typer(
    no_args_is_help=True,
    help="MQTT broker logins (devices, gateways, the platform) and Mosquitto's files.",
)
user_cli = typer.Typer(no_args_is_help=True, help="Gateway logins (devices use their secret).")
broker_cli.add_typer(user_cli, name="user")
_out = Console()
_err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Overrides TWINGRAPH_DATA_DIR.", show_default=False),
]
Output = Annotated[
    str, typer.Option("--output", "-o", help="File to write (mode 0600); - for stdout.")
]


@contextmanager
def _users(data_dir: Path | None) -> Iterator[tuple[Settings, BrokerUsers]]:
    """The logins table, through the database alone: the graph store may be another
    process's, and ``app.platform`` takes seconds to import."""
    from app.telemetry.db import connect_pool, migrate
    from app.telemetry.pg_server import LocalPostgres
    from app.twins.broker_auth import BrokerUsers

    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    closers: list[Callable[[], None]] = []
    try:
        dsn = settings.database_url
        if dsn is None:  # as app.platform.open_database: the managed server
            local = LocalPostgres(settings.postgres_dir)
            already = local.running
            dsn = local.start()
            if not already:
                closers.append(local.stop)
        pool = connect_pool(dsn)
        closers.append(pool.close)
        migrate(pool)
        yield settings, BrokerUsers(pool)
    except AppError as exc:
        _err.print(f"[red]error[/red] ({exc.code}): {exc.detail}")
        raise typer.Exit(2 if exc.status >= 500 else 1) from None
    finally:
        for close in reversed(closers):
            close()


def _service(settings: Settings) -> tuple[str, str] | None:
    """The platform's login: the user of TWINGRAPH_MQTT_URL, else the managed broker's."""
    from app.twins.broker_auth import SERVICE_USER, service_password

    if settings.mqtt_url:
        from app.telemetry.mqtt_ingest import parse_url

        address = parse_url(settings.mqtt_url)
        if address.username is None:
            _err.print(
                "[yellow]warning[/yellow]: TWINGRAPH_MQTT_URL names no user, so the platform "
                "will be refused by a broker using these files"
            )
            return None
        return address.username, address.password or ""
    return SERVICE_USER, service_password(settings.broker_dir / "service-password")


def _emit(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _err.print(f"wrote {output}")


def _files(data_dir: Path | None) -> tuple[str, str]:
    from app.twins.broker_auth import BrokerAuth

    with _users(data_dir) as (settings, users):
        auth = BrokerAuth(users=users, service=_service(settings), write=lambda _p, _a: None)
        return auth.render()


@broker_cli.command("passwords")
def passwords(output: Output = "-", data_dir: DataDir = None) -> None:
    """Mosquitto's password file: the platform, gateways, every device with a login."""
    _emit(_files(data_dir)[0], output)


@broker_cli.command("acl")
def acl(output: Output = "-", data_dir: DataDir = None) -> None:
    """Mosquitto's ACL file: devices their own twin's topics, gateways readings."""
    _emit(_files(data_dir)[1], output)


@user_cli.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="gateway: may publish readings")] = "gateway",
    data_dir: DataDir = None,
) -> None:
    """Add a login and print its password (stored hashed; it cannot be shown again)."""
    from app.twins.broker_auth import gateway_username

    with _users(data_dir) as (_settings, users):
        password = users.add(name, role=role)
    _err.print(
        f"Broker user [bold]{gateway_username(name)}[/bold] ({role}) added; its password "
        "follows. A broker the platform runs picks it up within seconds; an external one "
        "when its files are exported again."
    )
    print(password)


@user_cli.command("remove")
def user_remove(name: str, data_dir: DataDir = None) -> None:
    """Remove a gateway login (NAME as given to ``add``)."""
    with _users(data_dir) as (_settings, users):
        users.remove(name)


@user_cli.command("list")
def user_list(data_dir: DataDir = None) -> None:
    """Every login but the platform's: gateways, and devices with a broker login."""
    with _users(data_dir) as (_settings, users):
        rows = users.all()
    table = Table("user", "role", "since")
    for user in rows:
        table.add_row(user.username, user.role, user.since.isoformat(timespec="seconds"))
    _out.print(table)
