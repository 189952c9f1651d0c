"""A PostgreSQL server the platform manages itself, so telemetry needs zero set-up.

Used only when ``TWINGRAPH_DATABASE_URL`` is not set. Layout under ``root``::

    root/pgdata/     the cluster (owned by the server's OS user, mode 0700; socket lives here)
    root/log/        server log (owned by the server's OS user)
    root/port        the TCP port, chosen once so restarts (and other processes) find it again
    root/password    the superuser's password (0600); the server only accepts scram logins

PostgreSQL refuses to run as root, so as root every server command runs as the existing
``postgres`` OS user through ``runuser`` (Debian's packages create it); ``root`` and the
directories above are handed to that user. As any other user the server runs as that user.
The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from app.errors import UnavailableError
from app.telemetry.ports import choose_port

DATABASE = "twingraph"
SUPERUSER = "twingraph"
SERVER_OS_USER = "postgres"
START_TIMEOUT_S = 60

INSTALL_HINT = (
    "install them (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install "
    "postgresql-server`; macOS: `brew install postgresql`) or set TWINGRAPH_DATABASE_URL "
    "to use an existing server"
)


def find_bin_dir(candidates: Sequence[Path] | None = None) -> Path:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``.

    Without ``candidates``: ``pg_config --bindir`` on PATH, Debian's
    ``/usr/lib/postgresql/<newest>/bin``, then wherever ``initdb`` is on PATH.
    """
    if candidates is None:
        found: list[Path] = []
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True
                )
                found.append(Path(out.stdout.strip()))
        debian = Path("/usr/lib/postgresql")
        if debian.is_dir():
            versions = [p for p in debian.iterdir() if p.name.split(".")[0].isdigit()]
            versions.sort(key=lambda p: float(p.name), reverse=True)
            found += [p / "bin" for p in versions]
        initdb = shutil.which("initdb")
        if initdb:
            found.append(Path(initdb).parent)
        candidates = found
    for directory in candidates:
        if all((directory / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return directory
    searched = ", ".join(str(c) for c in candidates) or "nothing to search"
    raise UnavailableError(
        f"No PostgreSQL server binaries (initdb, pg_ctl, postgres) found (searched: {searched}); "
        + INSTALL_HINT,
        code="postgres_not_installed",
    )


class LocalPostgres:
    """Owns one PostgreSQL cluster under ``root``: initdb on first start, reuse if running."""

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        bin_dirs: Sequence[Path] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "pgdata"
        self.log_dir = self.root / "log"
        self._port_file = self.root / "port"
        self._password_file = self.root / "password"
        self._requested_port = port
        self._bin_dirs = bin_dirs
        self._as_root = os.geteuid() == 0

    # -- public API -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while a postmaster for this data dir is alive (checked via its pid file)."""
        return self._postmaster_pid() is not None

    def start(self) -> str:
        """Start (or reuse) the server and return a libpq conninfo for the ``twingraph`` db.

        Idempotent: if a server of this data dir is already running (another process of
        ours started it), it is reused as is.
        """
        bin_dir = find_bin_dir(self._bin_dirs)
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb(bin_dir)
        if self._postmaster_pid() is None:
            self._remove_zombie_lock()
            port = self._choose_port()
            self._pg_ctl_start(bin_dir, port)
        port = self._running_port()
        conninfo = self.conninfo(port, dbname="postgres")
        self._ensure_database(conninfo)
        return self.conninfo(port, dbname=DATABASE)

    def stop(self) -> None:
        """Fast shutdown (active transactions roll back; committed data is on disk)."""
        if self._postmaster_pid() is None:
            return
        bin_dir = find_bin_dir(self._bin_dirs)
        self._run([str(bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])

    def conninfo(self, port: int, *, dbname: str = DATABASE) -> str:
        return make_conninfo(
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            password=self._password_file.read_text().strip(),
            dbname=dbname,
            connect_timeout=10,
        )

    # -- internals ---------------------------------------------------------------------------

    def _server_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            raise UnavailableError(
                f"Running as root, the managed PostgreSQL needs the {SERVER_OS_USER!r} OS user "
                "(created by the postgresql package); install it or run as a non-root user",
                code="postgres_not_installed",
            ) from None

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server command, as the ``postgres`` OS user when we are root."""
        if self._as_root:
            argv = ["runuser", "-u", SERVER_OS_USER, "--", *argv]
        result = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=self.root
        )
        if check and result.returncode != 0:
            raise UnavailableError(
                f"{Path(argv[4] if self._as_root else argv[0]).name} failed "
                f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}",
                code="postgres_failed",
            )
        return result

    def _hand_over(self, path: Path) -> None:
        """Give ``path`` to the server's OS user (only needed when we are root)."""
        if self._as_root:
            user = self._server_user()
            os.chown(path, user.pw_uid, user.pw_gid)

    def _initdb(self, bin_dir: Path) -> None:
        if self._as_root:
            # The server user must be able to reach root/ (traverse only, no listing).
            self.root.chmod(self.root.stat().st_mode | 0o111)
        for directory in (self.pgdata, self.log_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            self._hand_over(directory)
        if self._as_root:
            probe = self._run(["test", "-w", str(self.pgdata)], check=False)
            if probe.returncode != 0:
                raise UnavailableError(
                    f"The {SERVER_OS_USER!r} OS user cannot reach {self.pgdata}: a parent "
                    "directory is not traversable by it (chmod o+x the parents, or choose a "
                    "data dir elsewhere)",
                    code="postgres_failed",
                )
        if not self._password_file.exists():
            fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        # initdb reads the password from a file the server user can read; remove it after.
        pwfile = self.log_dir / "initdb.pw"
        pwfile.write_text(self._password_file.read_text())
        pwfile.chmod(0o600)
        self._hand_over(pwfile)
        try:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _choose_port(self) -> int:
        return choose_port(self._port_file, self._requested_port)

    def _server_options(self, bin_dir: Path, port: int) -> str:
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {port}",
            f"-k {self.pgdata}",
            # Acknowledged writes must survive kill -9 of the server or of us: keep the
            # durability defaults explicit in case a copied postgresql.conf relaxed them.
            "-c fsync=on",
            "-c synchronous_commit=on",
        ]
        if _timescaledb_library(bin_dir) is not None:
            options.append("-c shared_preload_libraries=timescaledb")
        return " ".join(options)

    def _pg_ctl_start(self, bin_dir: Path, port: int) -> None:
        try:
            self._pg_ctl(bin_dir, port)
        except UnavailableError as exc:
            log = self.log_dir / "postgres.log"
            with contextlib.suppress(OSError):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
                exc.detail = f"{exc.detail}\n{log}:\n{tail}"
                exc.args = (exc.detail,)
            raise

    def _pg_ctl(self, bin_dir: Path, port: int) -> None:
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_dir / "postgres.log"),
                "-o",
                self._server_options(bin_dir, port),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ]
        )

    def _pid_file_lines(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None

    def _postmaster_pid(self) -> int | None:
        lines = self._pid_file_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by another user
        # A killed postmaster can linger as a zombie where PID 1 does not reap (containers).
        return None if _is_zombie(pid) else pid

    def _remove_zombie_lock(self) -> None:
        """Drop lock files whose postmaster is a zombie: PostgreSQL's own liveness check
        (``kill(pid, 0)``) counts zombies as running and would refuse to start. Its shared
        memory check still guards against orphaned backends."""
        for lock in [self.pgdata / "postmaster.pid", *self.pgdata.glob(".s.PGSQL.*.lock")]:
            with contextlib.suppress(OSError):
                first = lock.read_text().split("\n", 1)[0].strip()
                if first.isdigit() and _is_zombie(int(first)):
                    lock.unlink()

    def _running_port(self) -> int:
        """The port from postmaster.pid (line 4), which is what the live server really uses."""
        lines = self._pid_file_lines()
        if lines and len(lines) >= 4 and lines[3].strip().isdigit():
            return int(lines[3])
        raise UnavailableError(
            f"PostgreSQL in {self.pgdata} is not running", code="postgres_failed"
        )

    def _connect_when_ready(self, conninfo: str) -> psycopg.Connection[Any]:
        """Connect, waiting while a reused server is still starting or recovering."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                return psycopg.connect(conninfo, autocommit=True)
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self._postmaster_pid() is None:
                    raise
                time.sleep(0.1)

    def _ensure_database(self, conninfo: str) -> None:
        try:
            with self._connect_when_ready(conninfo) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if exists is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except psycopg.errors.DuplicateDatabase:
            pass  # another process created it between our check and our CREATE
        except psycopg.OperationalError as exc:
            raise UnavailableError(
                f"Managed PostgreSQL in {self.pgdata} does not accept connections: {exc}",
                code="postgres_failed",
            ) from exc


def _is_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _timescaledb_library(bin_dir: Path) -> Path | None:
    """TimescaleDB's loader library in this installation's pkglibdir, if installed."""
    pg_config = bin_dir / "pg_config"
    if pg_config.is_file():
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=True
            )
            lib = Path(out.stdout.strip()) / "timescaledb.so"
            return lib if lib.is_file() else None
    lib = bin_dir.parent / "lib" / "timescaledb.so"
    return lib if lib.is_file() else None
