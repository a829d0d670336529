"""Language-model policies: text interface, models, SFT and GRPO, rollouts with torch or vLLM, serving.

You are at the language-model side's front door (pure torch and Python, imports no Django;
transformers, tokenizers, peft and vLLM are imported only when a model is built, loaded or
served, so everything here imports without them). The pieces, in the order a training job
meets them:

- ``config``: :class:`LMTrainConfig` (model, SFT, GRPO) — typed, frozen, validated;
- ``textio``: observations as text, the action line grammar and its parser (``docs/lm-policies.md``);
- ``demos``: demonstrations from the reference solver and reviewer labels;
- ``modeling``: a tokenizer and small Llama built for a workflow, or a local checkpoint with LoRA;
- ``engines``: the rollout engines (``torch``, ``vllm``) behind one interface;
- ``rollout``: multi-turn episodes as token sequences with the model's tokens masked in;
- ``sft`` and ``grpo``: the two objectives; ``train``: :func:`train`, SFT then GRPO, resumable;
- ``checkpoint``: self-describing checkpoints that vLLM serves as they are;
- ``policy``: :class:`LMPolicy`, the engine Policy, local or over HTTP (``client``).
"""

from __future__ import annotations

from .checkpoint import LMCheckpoint, LMCheckpointError, latest_lm_checkpoint, load_bundle, read_lm_checkpoint
from .client import (
    ModelServerClient,
    ModelServerError,
    ModelServerUnavailable,
    serve_command,
    served_model_name,
)
from .config import GRPOConfig, LMModelConfig, LMTrainConfig, SFTConfig
from .policy import LMPolicy, LocalBackend, ServerBackend
from .textio import PARSE_ERROR, TEXT_FORMAT_VERSION, Transcript, format_action, parse_action
from .train import LMTrainResult, train

__all__ = [
    "PARSE_ERROR",
    "TEXT_FORMAT_VERSION",
    "GRPOConfig",
    "LMCheckpoint",
    "LMCheckpointError",
    "LMModelConfig",
    "LMPolicy",
    "LMTrainConfig",
    "LMTrainResult",
    "LocalBackend",
    "ModelServerClient",
    "ModelServerError",
    "ModelServerUnavailable",
    "SFTConfig",
    "ServerBackend",
    "Transcript",
    "format_action",
    "latest_lm_checkpoint",
    "load_bundle",
    "parse_action",
    "read_lm_checkpoint",
    "serve_command",
    "served_model_name",
    "train",
]
