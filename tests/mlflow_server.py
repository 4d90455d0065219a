"""A local `mlflow server` (UI + REST) on 127.0.0.1 as a context manager, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# A cold server migrates its SQLite schema and starts uvicorn: ~5-15 s on 2 cores.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class LocalServer:
    """`mlflow server` with a SQLite store and proxied artifacts under `folder`, bound to HOST."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = self.folder / "server.log"
        self._process: subprocess.Popen | None = None

    def launch(self) -> LocalServer:
        """Start the server process without waiting (do other set-up, then `wait_ready`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}"),
            *("--artifacts-destination", str(self.folder / "mlartifacts")),
            *("--host", HOST, "--port", str(self.port), "--workers", "1"),
        ]
        with open(self.log_path, "w") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> LocalServer:
        """Wait until /health answers; stop it and raise RuntimeError with its log if it does not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._process.poll() is None:
            if self.healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not start at {self.url}:\n{self.log_tail()}")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LocalServer:
        return self.launch().wait_ready(timeout_s)

    @property
    def pid(self) -> int | None:
        """The server process's id (None before `launch`)."""
        return None if self._process is None else self._process.pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server's process group (uvicorn workers included)."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
