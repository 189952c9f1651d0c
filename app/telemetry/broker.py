"""A Mosquitto broker the platform manages itself, for development, tests and benchmarks.

Layout under ``root``::

    root/mosquitto.conf   written on every start (loopback listener, persistence on)
    root/port             the TCP port, chosen once so restarts (and other processes) reuse it
    root/mosquitto.pid    written by the broker; how a later ``start()`` finds a running one
    root/mosquitto.db     the persistence file: sessions, subscriptions, queued QoS 1/2 messages
    root/mosquitto.log
    root/mosquitto.out    the broker's stdout/stderr (errors from before the log is open)
    root/passwd, root/acl with ``auth=True``: who may connect and what each user may read
                          and write (written by the caller through ``write_auth``)

The broker runs detached (its own session, not our child), so it outlives its starter,
as a broker would in production; ``start()`` reuses it when it is still running.

Persistence is on and ``max_queued_messages 0`` lifts the default cap of 1000 queued
messages per offline session (beyond it mosquitto silently drops QoS 1 messages, which the
ingest's durability contract cannot tolerate). Mosquitto saves the persistence file when it
stops on SIGTERM (what ``stop()`` sends) and every ``autosave_interval`` (30 min), so a
``kill -9`` of the broker loses what arrived since the last save: production brokers
should lower ``autosave_interval`` or use a clustered broker.

As root, mosquitto drops privileges to the ``mosquitto`` OS user after reading its config;
it then opens the log and writes the persistence and pid files as that user. ``root`` is
handed to that user when it can reach it; when it cannot (a parent directory it may not
traverse, such as pytest's 0700 ``/tmp/pytest-of-root``, or no such user) the broker is
told to stay root (``user root``), which ``user`` reports.

With ``auth=True`` anonymous clients are refused and mosquitto reads ``root/passwd`` and
``root/acl`` (deny-all until ``write_auth`` fills them); ``write_auth`` replaces them and
sends SIGHUP, on which mosquitto re-reads both, as its OS user (they are handed to it).
Connected clients keep their connection; new connections see the new files. Without
``auth`` (tests and benchmarks of plain MQTT ingest) anyone reaching 127.0.0.1 may connect.
A running broker whose configuration differs from the one ``start()`` would write (auth
switched on, say) is restarted rather than reused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from app.errors import UnavailableError
from app.telemetry.ports import accepts_connections, choose_port

log = logging.getLogger(__name__)

BROKER_OS_USER = "mosquitto"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
#: Where distributions put the binary besides PATH (Debian: /usr/sbin, often not on PATH).
EXTRA_SEARCH_PATH = "/usr/sbin:/sbin:/usr/local/sbin"
INSTALL_HINT = (
    "install it (Debian/Ubuntu: `apt-get install mosquitto`; Fedora: `dnf install "
    "mosquitto`; macOS: `brew install mosquitto`) or point TwinGraph at an existing broker"
)


def credentialed_url(url: str, username: str, password: str) -> str:
    """``url`` with user info (percent-encoded) for clients that must log in."""
    parts = urlsplit(public_url(url))
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    return urlunsplit((parts.scheme, userinfo + parts.netloc, parts.path, "", ""))


def public_url(url: str) -> str:
    """``url`` without user info: what logs, banners and documents may show."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def find_mosquitto(search_path: str | None = None) -> Path:
    """The ``mosquitto`` binary on ``search_path`` (default: PATH plus the sbin dirs)."""
    if search_path is None:
        search_path = os.pathsep.join(p for p in (os.environ.get("PATH"), EXTRA_SEARCH_PATH) if p)
    exe = shutil.which("mosquitto", path=search_path)
    if exe is None:
        raise UnavailableError(
            f"The mosquitto MQTT broker is not installed (searched {search_path}); " + INSTALL_HINT,
            code="mosquitto_not_installed",
        )
    return Path(exe)


class LocalMosquitto:
    """Owns one mosquitto daemon under ``root``, listening on 127.0.0.1 only."""

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        search_path: str | None = None,
        auth: bool = False,
    ) -> None:
        self.root = root.resolve()
        self.auth = auth
        self.config = self.root / "mosquitto.conf"
        self.password_file = self.root / "passwd"
        self.acl_file = self.root / "acl"
        self.log_file = self.root / "mosquitto.log"
        self._port_file = self.root / "port"
        self._pid_file = self.root / "mosquitto.pid"
        self._out_file = self.root / "mosquitto.out"
        self._requested_port = port
        self._search_path = search_path
        #: The OS user the broker runs as (decided by ``start()``).
        self.user: str | None = None
        #: Whether the last ``start()`` launched the broker (rather than reusing one).
        self.launched = False

    # -- public API -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the broker of this ``root`` is alive (checked via its pid file)."""
        return self._pid() is not None

    @property
    def port(self) -> int:
        """The port of the broker (remembered in ``root/port``); valid after ``start()``."""
        try:
            return int(self._port_file.read_text().strip())
        except (OSError, ValueError):
            raise UnavailableError(
                f"mosquitto in {self.root} has never been started", code="mosquitto_failed"
            ) from None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the broker (or reuse the running one of this ``root``); its ``mqtt://`` URL.

        Returns once the port accepts connections.
        """
        self.launched = False
        if self._pid() is not None:
            user = self._configured_user()
            current = self.config.read_text() if self.config.exists() else ""
            if user is not None and current == self._config_text(self.port, user):
                self.user = user
                self._wait_ready(self.port, None)
                return self.url
            log.info("restarting mosquitto in %s: its configuration changed", self.root)
            self.stop()
        exe = find_mosquitto(self._search_path)
        self.root.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        if self.auth:
            for path in (self.password_file, self.acl_file):
                if not path.exists():
                    _write_private(path, "", None)
        self.user = self._hand_over()
        self.config.write_text(self._config_text(port, self.user))
        self._pid_file.unlink(missing_ok=True)
        # Through a shell that backgrounds it and exits, so the broker is nobody's child here
        # and outlives us (a daemon, reaped by init); in its own session, so a Ctrl-C aimed
        # at us does not reach it. Its stdout/stderr (config errors come before the log is
        # open) go to mosquitto.out.
        launcher = subprocess.run(
            [
                "/bin/sh",
                "-c",
                'exec "$0" -c "$1" </dev/null >"$2" 2>&1 & echo $!',
                str(exe),
                str(self.config),
                str(self._out_file),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
            timeout=START_TIMEOUT_S,
        )
        if launcher.returncode != 0 or not launcher.stdout.strip().isdigit():
            raise self._failure(f"could not launch {exe}: {launcher.stderr.strip()[-2000:]}")
        self._wait_ready(port, int(launcher.stdout))
        self.launched = True
        return self.url

    def write_auth(self, passwords: str, acl: str) -> bool:
        """Replace ``passwd`` and ``acl`` (see ``write_auth_files``); a running broker
        re-reads them. False when both were already so."""
        changed = write_auth_files(
            self.root, passwords, acl, owner=self.user or self._configured_user()
        )
        if changed:
            self.reload()
        return changed

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its configuration, password and ACL files."""
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then wait for the exit."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._alive(pid):
            if time.monotonic() > deadline:
                log.warning("mosquitto %d ignored SIGTERM for %.0f s; killing", pid, STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT_S
            time.sleep(0.01)
        # Normally mosquitto removes it; not if it was killed.
        self._pid_file.unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------------------------

    def _choose_port(self) -> int:
        return choose_port(self._port_file, self._requested_port)

    def _hand_over(self) -> str:
        """As root: give ``root`` to the broker's OS user when it can reach it (the user to
        put in the config), else keep the broker root. Otherwise: the current user."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        try:
            user = pwd.getpwnam(BROKER_OS_USER)
        except KeyError:
            return "root"
        probe = ["runuser", "-u", BROKER_OS_USER, "--", "test", "-x", str(self.root.parent)]
        try:
            reachable = subprocess.run(probe, capture_output=True).returncode == 0
        except OSError:  # no runuser
            reachable = False
        if not reachable:
            log.info(
                "the %r user cannot reach %s (a parent directory is not traversable); "
                "mosquitto will run as root",
                BROKER_OS_USER,
                self.root,
            )
            return "root"
        owned = (self.log_file, self._pid_file, self.root / "mosquitto.db")
        for path in (self.root, *owned, self.password_file, self.acl_file):
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, user.pw_uid, user.pw_gid)
        return BROKER_OS_USER

    def _config_text(self, port: int, user: str) -> str:
        if self.auth:
            access = (
                "allow_anonymous false\n"
                f"password_file {self.password_file}\n"
                f"acl_file {self.acl_file}\n"
            )
        else:
            access = "allow_anonymous true\n"
        rest = (
            "persistence true\n"
            f"persistence_location {self.root}/\n"
            "max_queued_messages 0\n"
            # Small messages go out at once (Nagle's delay doubled device round trips).
            "set_tcp_nodelay true\n"
            f"log_dest file {self.log_file}\n"
            f"pid_file {self._pid_file}\n"
            f"user {user}\n"
        )
        header = "# Written by TwinGraph's LocalMosquitto on every start: edits are lost.\n"
        return f"{header}listener {port} 127.0.0.1\n{access}{rest}"

    def _configured_user(self) -> str | None:
        with contextlib.suppress(OSError):
            for line in self.config.read_text().splitlines():
                if line.startswith("user "):
                    return line.split(None, 1)[1].strip()
        return None

    def _wait_ready(self, port: int, launched: int | None) -> None:
        """Until the broker (``launched``, or the pid file's) accepts connections."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if launched is not None and not self._alive(launched):
                raise self._failure(f"mosquitto exited at start (port {port})")
            # The broker writes its pid file once its listener is open: until then the port
            # may well accept connections, for another process.
            pid = self._pid()
            if pid is not None and pid == (launched or pid) and accepts_connections(port):
                return
            if time.monotonic() > deadline:
                if launched is not None:  # do not leave a half-started broker behind
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(launched, signal.SIGKILL)
                raise self._failure(
                    f"mosquitto did not accept connections on 127.0.0.1:{port} within "
                    f"{START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.01)

    def _failure(self, message: str) -> UnavailableError:
        tail = ""
        for path in (self._out_file, self.log_file):
            with contextlib.suppress(OSError):
                if lines := path.read_text(errors="replace").splitlines()[-8:]:
                    tail += f"\n{path}:\n" + "\n".join(lines)
        return UnavailableError(message + tail, code="mosquitto_failed")

    def _pid(self) -> int | None:
        """The pid in the pid file, if that process is alive and is our broker."""
        try:
            text = self._pid_file.read_text().strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if self._alive(pid) and self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        """Guards against a stale pid file whose pid now names another process."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no procfs: trust the pid file
        except OSError:
            return True
        return os.fsencode(self.config) in cmdline

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, another user's
        # Where PID 1 does not reap orphans (containers), an exited daemon stays a zombie.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")


def write_auth_files(directory: Path, passwords: str, acl: str, *, owner: str | None) -> bool:
    """Write ``directory/passwd`` and ``directory/acl`` where they differ, each through a
    rename (a broker reloading meanwhile reads the old file or the new, never half of one),
    mode 0600; as root, owned by ``owner`` (the broker's OS user re-reads them on SIGHUP).
    False when both were already so."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    for path, text in ((directory / "passwd", passwords), (directory / "acl", acl)):
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                continue
        _write_private(path, text, owner)
        changed = True
    return changed


def _write_private(path: Path, text: str, owner: str | None) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if owner is not None and os.geteuid() == 0 and owner != "root":
            with contextlib.suppress(KeyError, OSError):
                account = pwd.getpwnam(owner)
                os.chown(tmp, account.pw_uid, account.pw_gid)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
