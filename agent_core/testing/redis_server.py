"""Start a real, throwaway ``redis-server`` on a free port, for tests and benchmarks."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from agent_core.errors import StandInError

__all__ = ["RedisServer", "free_port"]


_LOWEST = 10_000
"""Below this are ports other software on a machine tends to use."""
_picks = random.Random()  # seeded from the OS: each test process picks on its own


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, chosen below the kernel's
    ephemeral range (``net.ipv4.ip_local_port_range``).

    A port the kernel handed out for ``bind(0)`` is handed out again to the next server that
    binds port 0 (a stand-in) or to the next outgoing connection, possibly in a parallel test
    before this port's server has started; below that range the kernel never picks one.
    """
    first = _ephemeral_start()
    for _ in range(200):
        port = _picks.randrange(_LOWEST, first) if first - _LOWEST >= 1_000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # taken: pick again
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free TCP port found below the ephemeral range")


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where it is unknown)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


@dataclass(kw_only=True)
class RedisServer:
    """A ``redis-server`` process in a temporary folder, stopped on exit.

    With ``appendonly`` the server keeps an AOF in its folder, so a restart
    (:meth:`restart`) keeps every acknowledged write, as production should.
    """

    appendonly: bool = False
    """Persist with an append-only file (fsync every write)."""

    startup_timeout: float = 10.0
    """Seconds to wait for the server to answer PING."""

    port: int = field(default_factory=free_port)
    """The port it listens on."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="airlock-redis-")))
    """Where its files live."""

    process: subprocess.Popen[bytes] | None = None
    """The running server, if any."""

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def executable() -> str:
        """The path of ``redis-server``; :class:`StandInError` if it is not installed."""
        path = shutil.which("redis-server")
        if path is None:
            raise StandInError(
                "redis-server is not installed (apt-get install redis-server); "
                "the Redis store tests need a real one, or set REDIS_URL"
            )
        return path

    def start(self) -> None:
        """Start the server and wait until it answers."""
        args = [
            self.executable(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise StandInError(f"redis-server exited at start-up:\n{log}")
            if _answers_ping(self.port):
                return
            time.sleep(0.02)  # a subprocess gives no readiness event; poll until the deadline
        raise StandInError(f"redis-server did not answer on port {self.port} in time")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop the server abruptly, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port and folder."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
