"""Start services as `nameko run` processes and wait until each answers /healthz: the one way
`make run`, the end-to-end tests and the benchmarks bring a system up (and take it down)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
# Each service's own HTTP port when nothing else is said (docs/architecture.md).
PORTS = {"intake": 8000, "tracking": 8001, "crews": 8002, "notifications": 8003, "billing": 8004}


class ServiceFailed(RuntimeError):
    """A service exited or did not answer /healthz in time; the message ends with its log."""


class ServiceProcess:
    """One service in a process group of its own (so kill -9 takes its children too).

    Its HTTP address comes from `<SERVICE>_HTTP_ADDRESS`; its output goes to `log` (a file of
    its own by default, or None to share the caller's terminal)."""

    def __init__(self, service: str, env: Mapping[str, str], port: int | None = None,
                 host: str = "127.0.0.1", log: str | Path | None = "file") -> None:
        self.service = service
        self.port = port or PORTS[service]
        self.host = host
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PSYCOPG_WAIT_FUNC": "wait_select",
                    f"{service.upper()}_HTTP_ADDRESS": f"{host}:{self.port}", **env}
        self.log_path: Path | None = None
        if log == "file":
            self.log_path = Path(tempfile.mkstemp(prefix=f"{service}-", suffix=".log")[1])
        elif log is not None:
            self.log_path = Path(log)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ServiceProcess:
        """Start the process (not waiting: see `wait_healthy`)."""
        bin_dir = Path(sys.executable).parent
        command = [str(bin_dir / "nameko"), "run", "--config",
                   str(ROOT / "services" / self.service / "config.yaml"),
                   f"services.{self.service}.service"]
        output: IO[bytes] | None = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env,
                                            start_new_session=True, stdout=output,
                                            stderr=subprocess.STDOUT if output else None)
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor
        return self

    def healthy(self) -> bool:
        """True once /healthz answers; ServiceFailed if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ServiceFailed(f"{self.service} exited with {self.process.returncode}"
                                f"{self._log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 90.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ServiceFailed(f"{self.service} did not answer /healthz within "
                                    f"{timeout:g} s{self._log_tail()}")
            time.sleep(0.2)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: a crash, as an operator's machine fails."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (nameko finishes its workers), then SIGKILL if it does not end in time."""
        if not self.running():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def _log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return ":\n" + self.log_path.read_text(errors="replace")[-chars:]


def start_all(processes: Iterable[ServiceProcess], timeout: float = 90.0) -> None:
    """Start every process at once, then wait until each is healthy; on failure stop them all."""
    started = list(processes)
    try:
        for process in started:
            process.start()
        for process in started:
            process.wait_healthy(timeout)
    except BaseException:
        stop_all(started)
        raise


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    for process in reversed(list(processes)):
        process.stop()
