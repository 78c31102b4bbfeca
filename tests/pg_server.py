"""A throw-away PostgreSQL server for the test suite: initdb into a temp dir, start, stop.

The server runs as a non-root user (initdb and postgres refuse root): when the tests run as
root, initdb and postgres run as the ``postgres`` system user (created with ``useradd`` if
missing; the switch happens in the child before exec). It listens only on a unix socket in
its own temp directory, with trust authentication, ``fsync=off`` (the tests kill
coordinators, never this server), a ``lock_timeout`` so that a test bug ends in an error
rather than a hang, and the settings given, e.g. ``max_prepared_transactions=10``.

``postgres`` is a direct child of the test process with a parent-death signal: if the test
run is killed, the server shuts down too instead of lingering. Temp directories that such
a run leaves behind are removed by the next start once they are an hour old.

No pytest in here, so scripts and examples can use it too::

    with PgServer.start({"max_prepared_transactions": "10"}) as server:
        server.create_database("bank")
        conninfo = server.conninfo("bank")
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["PgServer", "PgServerError", "find_bindir"]

SERVER_USER = "postgres"
TEMP_PREFIX = "dtc-pg-"
STALE_AFTER = 3600.0  # seconds
PR_SET_PDEATHSIG = 1


class PgServerError(RuntimeError):
    """The test PostgreSQL server could not be found, started or used."""


def find_bindir() -> Path:
    """Where initdb/pg_ctl live: ``pg_config --bindir``, then /usr/lib/postgresql/*/bin
    (newest first), then PATH. Raises :class:`PgServerError` saying how to install them."""
    candidates: list[Path] = []
    env_dir = os.environ.get("DTC_PG_BINDIR")
    if env_dir:
        candidates.append(Path(env_dir))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise PgServerError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: looked at DTC_PG_BINDIR, "
        "`pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH. Install them "
        "(`apt-get install postgresql`; `python3 dev.py test` does it when run as root) or "
        "point DTC_PG_BINDIR at the directory holding initdb"
    )


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_USER)


def _child_setup(user: pwd.struct_passwd | None) -> Callable[[], None]:
    """Runs in the child before exec: drop to ``user``, then ask the kernel to SIGQUIT the
    child (postgres: immediate shutdown) when the test process dies. The order matters:
    changing the uid clears the parent-death signal."""
    parent = os.getpid()

    def setup() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _remove_stale_dirs() -> None:
    """Delete temp dirs of test servers whose run was killed: old, and no live postmaster."""
    for base in Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            if time.time() - base.stat().st_mtime < STALE_AFTER:
                continue
            pid_file = base / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split("\n", 1)[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 0)
                    continue  # still running: not ours to remove
            shutil.rmtree(base, ignore_errors=True)
        except (OSError, ValueError):
            continue


class PgServer:
    """One running PostgreSQL cluster; use :meth:`start` to get one."""

    def __init__(self, bindir: Path, base: Path, port: int, user: pwd.struct_passwd | None):
        self.bindir = bindir
        self.base = base
        self.data = base / "data"
        self.socket_dir = base
        self.port = port
        self.log_file = base / "server.log"
        self._user = user
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @classmethod
    def start(
        cls,
        settings: Mapping[str, str] | None = None,
        *,
        bindir: Path | None = None,
        timeout: float = 60.0,
    ) -> PgServer:
        """initdb a new cluster in a fresh temp dir and start it with ``settings``."""
        bindir = bindir or find_bindir()
        _remove_stale_dirs()
        base = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            user = _ensure_server_user()
            os.chown(base, user.pw_uid, user.pw_gid)
        server = cls(bindir, base, 5432, user)
        try:
            server._initdb(settings or {})
            server._start(timeout)
        except BaseException:
            server.destroy()
            raise
        return server

    def _run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=self.base,
            check=False,
            preexec_fn=_child_setup(self._user),
        )
        if proc.returncode != 0:
            raise PgServerError(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def _initdb(self, settings: Mapping[str, str]) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        conf = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(self.port),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "shared_buffers": "16MB",
            "max_connections": "60",
            "lock_timeout": "'30s'",
            **{k: str(v) for k, v in settings.items()},
        }
        lines = "".join(f"{key} = {value}\n" for key, value in conf.items())
        with (self.data / "postgresql.conf").open("a") as handle:
            handle.write("\n# dtc-wal test server\n" + lines)

    def _start(self, timeout: float) -> None:
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                preexec_fn=_child_setup(self._user),
            )
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        deadline = time.monotonic() + timeout
        while not self._accepts_connections(socket):
            if not self.running:
                raise PgServerError(f"postgres exited at start-up\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PgServerError(f"postgres not ready after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def _accepts_connections(self, socket: Path) -> bool:
        if not socket.exists():
            return False
        proc = subprocess.run(
            [
                str(self.bindir / "pg_isready"),
                "-q",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
            ],
            check=False,
        )
        return proc.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "server log (tail):\n" + "\n".join(text.splitlines()[-lines:])

    # -- use ------------------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string for database ``dbname`` as the superuser."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement in autocommit mode (CREATE DATABASE cannot run in a block)."""
        import psycopg

        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its conninfo."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    # -- teardown ---------------------------------------------------------------------------

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT) if that takes longer than ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            process.wait()

    def destroy(self) -> None:
        """Stop the server (if running) and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()
