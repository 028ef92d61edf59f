"""A throwaway PostgreSQL server a test may stop, freeze and restart.

The shared test server on 5432 must never be frozen, so fault drills run their own:
initdb in a temporary folder, one server on a free port, stopped at the end whatever
happens. PostgreSQL refuses to run as root; as root the server runs as the
``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")
START_WAIT_S = 30.0
STOP_WAIT_S = 10.0


def find_binary(name: str) -> str | None:
    """Return the path of a PostgreSQL program, or None when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    for folder in BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


class ThrowawayPostgres:
    """One PostgreSQL server of a test's own: start, freeze, thaw, stop."""

    def __init__(self) -> None:
        initdb, postgres = find_binary("initdb"), find_binary("postgres")
        if initdb is None or postgres is None:
            raise FileNotFoundError("PostgreSQL's initdb and postgres programs are not installed")
        self._initdb, self._postgres = initdb, postgres
        self._user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="taleweaver-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.root / "server.log"
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._spawn(
            [self._initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"],
            wait=True,
        )

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _spawn(self, argv: list[str], *, wait: bool) -> subprocess.Popen[bytes]:
        user = self._user
        log = self._log.open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                # Away from the test's terminal and its Ctrl-C.
                start_new_session=True,
            )
        finally:
            log.close()
        if wait and process.wait(timeout=120) != 0:
            raise RuntimeError(f"{argv[0]} failed: {self._log.read_text(errors='replace')}")
        return process

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._process = self._spawn(
            [
                self._postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=30",
            ],
            wait=False,
        )
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self._log.read_text(errors='replace')}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                # The port opens a moment before the server accepts logins; asyncpg's
                # connect waits out "starting up" itself only for so long, so settle.
                time.sleep(0.3)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not start in time")

    def _children(self) -> list[int]:
        assert self._process is not None
        parent = str(self._process.pid)
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                # "pid (name) state ppid ...": the name may hold spaces, the ")" ends it.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[1] == parent:
                    children.append(int(entry.name))
        return children

    def _signal_all(self, signum: int) -> None:
        # Each backend is its own process group (PostgreSQL calls setsid), so the server
        # and its children are signalled one by one, the postmaster first: stopped, it
        # starts no new ones meanwhile.
        if self._process is None or self._process.poll() is not None:
            return
        os.kill(self._process.pid, signum)
        for pid in self._children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def freeze(self) -> None:
        """Stop every server process where it stands (SIGSTOP): connections stay open."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen server run on (SIGCONT)."""
        self._signal_all(signal.SIGCONT)

    def stop(self) -> None:
        """Shut the server down (fast shutdown; killed if it does not go in time)."""
        process = self._process
        if process is None:
            return
        self.thaw()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._signal_all(signal.SIGKILL)
                process.wait(timeout=STOP_WAIT_S)
        self._process = None

    def remove(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Yield a started throwaway server; stop it and delete its files afterwards."""
    server = ThrowawayPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def drill_server() -> Iterator[ThrowawayPostgres]:
    """Yield a started throwaway server; skip (fail with CI=true) where PostgreSQL is missing."""
    from conftest import service_missing

    server: ThrowawayPostgres | None = None
    try:
        try:
            server = ThrowawayPostgres()
            server.start()
        except (FileNotFoundError, RuntimeError, subprocess.SubprocessError) as exc:
            service_missing("a PostgreSQL installation (initdb, postgres) for fault drills", exc)
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.remove()
