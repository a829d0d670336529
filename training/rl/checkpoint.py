"""Self-describing, atomically written checkpoints, and loading a trained policy for serving.

You are in the RL side's archive. A checkpoint root directory looks like::

    <root>/LATEST                 the name of the newest complete checkpoint ("update-00000120")
    <root>/update-00000120/
        model.pt                  network weights (state_dict)
        optimizer.pt              Adam state (state_dict)
        trainer_state.pt          update and step counters, RNG states (torch generator, global
                                  torch, python), in-flight episodes and the case sampler and
                                  curriculum state — everything resumption needs
        config.json               the PPOConfig as JSON
        metadata.json             format version, created time, spec hash and spec, feature
                                  schema (so a loaded policy featurizes identically), model
                                  shape, metrics at save, sha256 of every file (weights included)

Writing is atomic: the files go into a hidden temporary directory, are fsynced, the directory
is renamed into place, and only then is ``LATEST`` replaced (temp file + ``os.replace``). A
kill at any moment leaves ``LATEST`` pointing at the last complete checkpoint. Older
checkpoints beyond ``keep`` are pruned afterwards. Loading verifies the recorded sha256 sums.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from workflows.engine import WorkflowSpec

from .features import Featurizer, spec_hash
from .nets import ActorCritic, ModelShape
from .policy import NeuralPolicy

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "latest_checkpoint",
    "load_policy",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
LATEST = "LATEST"
MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
TRAINER_FILE = "trainer_state.pt"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
_PREFIX = "update-"


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete, corrupted or for another workflow."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint directory on disk and its parsed metadata and config."""

    path: Path
    metadata: dict[str, Any]
    config: dict[str, Any]

    @property
    def update(self) -> int:
        return int(self.metadata["update"])

    @property
    def global_step(self) -> int:
        return int(self.metadata["global_step"])

    def load_model(self) -> ActorCritic:
        model = ActorCritic(ModelShape.from_dict(self.metadata["model_shape"]))
        model.load_state_dict(torch.load(self.path / MODEL_FILE, weights_only=True))
        return model

    def load_optimizer_state(self) -> dict[str, Any]:
        return torch.load(self.path / OPTIMIZER_FILE, weights_only=True)

    def load_trainer_state(self) -> dict[str, Any]:
        return torch.load(self.path / TRAINER_FILE, weights_only=True)

    def featurizer(self, spec: WorkflowSpec) -> Featurizer:
        self.check_spec(spec)
        return Featurizer.from_dict(spec, self.metadata["feature_schema"])

    def check_spec(self, spec: WorkflowSpec) -> None:
        if self.metadata.get("spec_hash") != spec_hash(spec):
            raise CheckpointError(
                f"checkpoint {self.path} was trained on another version of the workflow spec "
                f"(spec hash {str(self.metadata.get('spec_hash'))[:12]}…, this spec {spec_hash(spec)[:12]}…)"
            )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_checkpoint(
    root: str | os.PathLike[str],
    *,
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    featurizer: Featurizer,
    spec: WorkflowSpec,
    config: Mapping[str, Any],
    update: int,
    global_step: int,
    trainer_state: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``update`` under ``root`` atomically, point LATEST at it, prune."""
    name = f"{_PREFIX}{update:08d}"
    with checkpoint_directory(root, name, prefix=_PREFIX, keep=keep) as temporary:
        torch.save(model.state_dict(), temporary / MODEL_FILE)
        torch.save(optimizer.state_dict(), temporary / OPTIMIZER_FILE)
        torch.save(dict(trainer_state), temporary / TRAINER_FILE)
        _write_json(temporary / CONFIG_FILE, dict(config))
        files = {
            file: file_sha256(temporary / file)
            for file in (MODEL_FILE, OPTIMIZER_FILE, TRAINER_FILE, CONFIG_FILE)
        }
        metadata = {
            "format_version": CHECKPOINT_FORMAT,
            "kind": "caseloop.training.rl.ppo",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "update": update,
            "global_step": global_step,
            "spec_name": spec.name,
            "spec_hash": spec_hash(spec),
            "spec": spec.to_dict(),
            "action_names": list(spec.action_names),
            "feature_schema": featurizer.to_dict(),
            "model_shape": model.shape.to_dict(),
            "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))},
            "weights_sha256": files[MODEL_FILE],
            "files": files,
        }
        _write_json(temporary / METADATA_FILE, metadata)
    return Path(root) / name


@contextlib.contextmanager
def checkpoint_directory(
    root: str | os.PathLike[str], name: str, *, prefix: str, keep: int
) -> Iterator[Path]:
    """Yield a temporary directory under ``root`` to fill with checkpoint ``name``. On a clean exit
    every file in it is fsynced, it replaces ``root/name`` by one rename, LATEST points at it, and
    only the ``keep`` newest ``prefix*`` checkpoints stay; on an error it is removed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    temporary = root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        for path in sorted(temporary.rglob("*")):
            if path.is_file():
                fsync_path(path)
        fsync_path(temporary)
        if final.exists():  # the same step saved again (say after a resume): replace it
            shutil.rmtree(final)
        os.rename(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.{uuid.uuid4().hex[:8]}"
    pointer.write_text(name + "\n")
    fsync_path(pointer)
    os.replace(pointer, root / LATEST)
    fsync_path(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))
    for old in names[: -max(keep, 1)]:
        if old != name:
            shutil.rmtree(root / old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # left behind by a kill mid-save
        shutil.rmtree(stale, ignore_errors=True)


def latest_in(
    root: str | os.PathLike[str],
    *,
    metadata_file: str,
    prefix: str,
    read: Callable[[Path], Any],
    errors: tuple[type[BaseException], ...],
) -> Any:
    """The newest complete checkpoint under ``root`` (via LATEST, else the newest one ``read``
    accepts), ``root`` itself when it is a checkpoint, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / metadata_file).is_file():
        return read(root)
    pointer = root / LATEST
    if pointer.is_file():
        with contextlib.suppress(*errors, OSError, ValueError):
            return read(root / pointer.read_text().strip())
    candidates = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)), reverse=True)
    for candidate in candidates:
        with contextlib.suppress(*errors, OSError, ValueError):
            return read(candidate)
    return None


def read_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> Checkpoint:
    """Parse one checkpoint directory (``update-…``), checking its format and file hashes."""
    path = Path(path)
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {METADATA_FILE})")
    metadata = json.loads(metadata_path.read_text())
    if metadata.get("format_version") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {metadata.get('format_version')!r}, expected {CHECKPOINT_FORMAT}"
        )
    if verify:
        for file, digest in metadata["files"].items():
            if not (path / file).is_file() or file_sha256(path / file) != digest:
                raise CheckpointError(f"{path / file} is missing or does not match its recorded sha256")
    config = json.loads((path / CONFIG_FILE).read_text())
    return Checkpoint(path=path, metadata=metadata, config=config)


def latest_checkpoint(root: str | os.PathLike[str]) -> Checkpoint | None:
    """The newest complete checkpoint under ``root`` (via LATEST, else the newest valid one), or None.

    ``root`` may also be a checkpoint directory itself.
    """
    return latest_in(
        root, metadata_file=METADATA_FILE, prefix=_PREFIX, read=read_checkpoint, errors=(CheckpointError,)
    )


def load_policy(
    checkpoint_dir: str | os.PathLike[str],
    spec: WorkflowSpec,
    *,
    deterministic: bool = True,
    seed: int | None = None,
) -> NeuralPolicy:
    """The trained policy in ``checkpoint_dir`` (a root or one checkpoint) for serving ``spec``."""
    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir}")
    featurizer = checkpoint.featurizer(spec)
    return NeuralPolicy(checkpoint.load_model(), featurizer, spec, deterministic=deterministic, seed=seed)
