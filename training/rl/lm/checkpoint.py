"""Checkpoints of language-model policies: a servable Hugging Face directory that describes itself.

You are in the language-model archive. A checkpoint root looks like::

    <root>/LATEST                  name of the newest complete checkpoint ("step-00000060")
    <root>/step-00000060/
        config.json                 the model (LoRA adapters merged in): vLLM serves this
        model.safetensors           directory as it is, ``--model <root>/step-00000060``
        generation_config.json
        tokenizer.json …            the tokenizer, saved next to the model
        caseloop.json               format version, step and phase (sft/grpo), spec hash and
                                    spec, text format version, stop token ids, base model and
                                    LoRA settings, the LMTrainConfig, metrics at save, sha256 of
                                    every file and ``weights_sha256`` (what a PolicyVersion's
                                    ``artifact_hash`` records)
        trainer/optimizer.pt        AdamW state of the current phase
        trainer/state.pt            counters and the data sampler's state
        trainer/trainable.pt        the LoRA adapters (LoRA models only)
        trainer/reference.pt        the SFT model's trainable tensors (GRPO with a KL term)

Written into a hidden temporary directory, fsynced, renamed into place, then ``LATEST`` is
replaced atomically; older checkpoints beyond ``keep`` are pruned. Reading verifies every
recorded sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from workflows.engine import WorkflowSpec

from ..checkpoint import checkpoint_directory, file_sha256, latest_in
from ..features import spec_hash
from .textio import TEXT_FORMAT_VERSION

__all__ = [
    "LM_CHECKPOINT_FORMAT",
    "LMCheckpoint",
    "LMCheckpointError",
    "latest_lm_checkpoint",
    "read_lm_checkpoint",
    "save_lm_checkpoint",
]

LM_CHECKPOINT_FORMAT = 1
KIND = "caseloop.training.rl.lm"
METADATA_FILE = "caseloop.json"
TRAINER_DIR = "trainer"
_PREFIX = "step-"


class LMCheckpointError(Exception):
    """A language-model checkpoint is missing, incomplete, corrupted or for another workflow."""


@dataclass(frozen=True, slots=True)
class LMCheckpoint:
    path: Path
    metadata: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.metadata["step"])

    @property
    def update(self) -> int:  # the name training jobs use
        return self.step

    @property
    def phase(self) -> str:
        return str(self.metadata["phase"])

    @property
    def weights_sha256(self) -> str:
        return str(self.metadata["weights_sha256"])

    def check_spec(self, spec: WorkflowSpec) -> None:
        if self.metadata.get("spec_hash") != spec_hash(spec):
            raise LMCheckpointError(
                f"checkpoint {self.path} was trained on another version of the workflow spec "
                f"(spec hash {str(self.metadata.get('spec_hash'))[:12]}…, this spec {spec_hash(spec)[:12]}…)"
            )

    def trainer_file(self, name: str) -> Path:
        return self.path / TRAINER_DIR / name


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() != METADATA_FILE
    )


def weights_digest(directory: Path, files: Mapping[str, str]) -> str:
    """sha256 over the weight files' own digests, in name order (one file: its digest)."""
    names = sorted(name for name in files if name.endswith(".safetensors") and "/" not in name)
    if not names:
        raise LMCheckpointError(f"{directory} holds no model weights (*.safetensors)")
    if len(names) == 1:
        return files[names[0]]
    return hashlib.sha256("".join(files[name] for name in names).encode()).hexdigest()


def save_lm_checkpoint(
    root: str | os.PathLike[str],
    *,
    bundle: Any,
    spec: WorkflowSpec,
    config: Mapping[str, Any],
    step: int,
    phase: str,
    optimizer: torch.optim.Optimizer | None,
    trainer_state: Mapping[str, Any],
    reference_state: Mapping[str, torch.Tensor] | None = None,
    metrics: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` under ``root`` atomically, point LATEST at it, prune."""
    from .engines import merged_state_dict

    name = f"{_PREFIX}{step:08d}"
    with checkpoint_directory(root, name, prefix=_PREFIX, keep=keep) as temporary:
        model = bundle.model
        if bundle.lora:
            base = model.get_base_model()
            base.save_pretrained(temporary, state_dict=merged_state_dict(model))
        else:
            model.save_pretrained(temporary)
        bundle.tokenizer.save_pretrained(temporary)
        trainer = temporary / TRAINER_DIR
        trainer.mkdir()
        if bundle.lora:  # a built model's trainable tensors are the saved model itself
            trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            torch.save(trainable, trainer / "trainable.pt")
        if optimizer is not None:
            torch.save(optimizer.state_dict(), trainer / "optimizer.pt")
        torch.save(dict(trainer_state), trainer / "state.pt")
        if reference_state is not None:
            torch.save(dict(reference_state), trainer / "reference.pt")
        files = {p.relative_to(temporary).as_posix(): file_sha256(p) for p in _files(temporary)}
        metadata = {
            "format_version": LM_CHECKPOINT_FORMAT,
            "kind": KIND,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "step": step,
            "phase": phase,
            "spec_name": spec.name,
            "spec_hash": spec_hash(spec),
            "spec": spec.to_dict(),
            "text_format_version": TEXT_FORMAT_VERSION,
            "stop_token_ids": list(bundle.stop_token_ids),
            "base_model": bundle.base_path or "",
            "lora": bool(bundle.lora),
            "parameters": bundle.parameter_count(),
            "config": dict(config),
            "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))},
            "files": files,
            "weights_sha256": weights_digest(temporary, files),
        }
        (temporary / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return Path(root) / name


def read_lm_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> LMCheckpoint:
    """Parse one checkpoint directory, checking its format and (``verify``) every file's sha256."""
    path = Path(path)
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise LMCheckpointError(f"{path} is not a complete language-model checkpoint (no {METADATA_FILE})")
    metadata = json.loads(metadata_path.read_text())
    if metadata.get("kind") != KIND or metadata.get("format_version") != LM_CHECKPOINT_FORMAT:
        raise LMCheckpointError(
            f"{path}: checkpoint kind {metadata.get('kind')!r} format {metadata.get('format_version')!r}, "
            f"expected {KIND!r} format {LM_CHECKPOINT_FORMAT}"
        )
    if verify:
        for name, digest in metadata["files"].items():
            file = path / name
            if not file.is_file() or file_sha256(file) != digest:
                raise LMCheckpointError(f"{file} is missing or does not match its recorded sha256")
    return LMCheckpoint(path=path, metadata=metadata)


def latest_lm_checkpoint(root: str | os.PathLike[str]) -> LMCheckpoint | None:
    """The newest complete checkpoint under ``root`` (or ``root`` itself), or None."""
    return latest_in(
        root,
        metadata_file=METADATA_FILE,
        prefix=_PREFIX,
        read=read_lm_checkpoint,
        errors=(LMCheckpointError,),
    )


def load_bundle(checkpoint: LMCheckpoint, *, for_training: bool = False) -> Any:
    """The checkpoint's model and tokenizer as a ``ModelBundle``.

    For serving (and for models built for a workflow) the saved directory is loaded as it is,
    LoRA adapters already merged. To resume LoRA training the base model is loaded from its own
    directory again and the saved adapters are put back on it."""
    from .config import LMModelConfig
    from .modeling import ModelBundle, add_lora, load_pretrained

    metadata = checkpoint.metadata
    stop_ids = [int(i) for i in metadata["stop_token_ids"]]
    if for_training and metadata.get("lora"):
        base_path = metadata["base_model"]
        model, _ = load_pretrained(base_path)
        model = add_lora(model, LMModelConfig.from_dict(metadata["config"]["model"]))
        _, tokenizer = load_pretrained(checkpoint.path)
        trainable = torch.load(checkpoint.trainer_file("trainable.pt"), weights_only=True)
        missing = set(trainable) - {name for name, _ in model.named_parameters()}
        if missing:
            raise LMCheckpointError(
                f"{checkpoint.path}: adapters do not fit the base model ({sorted(missing)[:3]})"
            )
        model.load_state_dict(trainable, strict=False)
        return ModelBundle(model, tokenizer, stop_ids, base_path=base_path, lora=True)
    model, tokenizer = load_pretrained(checkpoint.path)
    return ModelBundle(model, tokenizer, stop_ids, base_path=metadata.get("base_model") or None, lora=False)
