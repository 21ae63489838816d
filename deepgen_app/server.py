"""Start and stop the app's Streamlit server as a child process.

The browser tests and ``bench/dashboard.py`` use this to run the app the way
a user does, on 127.0.0.1 and a free port.
"""

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

APP = Path(__file__).resolve().parents[1] / "app.py"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium flags for a headless browser on a machine with no outside network:
without the networking flags it keeps trying to reach Google's hosts."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    runs_dir: str | os.PathLike, port: int, demo: bool = False, log=None
) -> subprocess.Popen:
    """Run ``streamlit run app.py`` on ``port`` for ``runs_dir``."""
    env = {
        **os.environ,
        "DEEPGEN_RUNS_DIR": str(runs_dir),
        "DEEPGEN_DEMO": "1" if demo else "0",
    }
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return subprocess.Popen(
        command,
        cwd=APP.parent,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def wait_until_ready(
    port: int, process: subprocess.Popen, timeout: float = 60
) -> float:
    """Wait for the server's health check to pass; return the seconds it took."""
    started = time.monotonic()
    url = f"http://127.0.0.1:{port}/_stcore/health"
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the app server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the app server on port {port} was not ready in {timeout} s")


def stop_server(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop the server; its worker notices and stops too."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
