"""Turning a stored PolicyVersion into an engine policy that can act.

Language-model versions (kind ``lm``) act in one of two ways: ``live=True`` (the ``decisions``
workers) asks the version's vLLM server over HTTP (``VLLM_URL``, served by ``manage.py
serve_policy``); otherwise (evaluation, tests) the checkpoint is loaded into this process."""

from __future__ import annotations

import threading  # neural policy cache
from collections import OrderedDict  # neural policy cache

from django.conf import settings
from django.core.exceptions import ValidationError

from training.models import PolicyKind, PolicyVersion
from workflows.engine.errors import SpecError
from workflows.engine.policies import Policy, RulesPolicy
from workflows.engine.spec import WorkflowSpec

DEFAULT_LM_SERVER_URL = "http://127.0.0.1:8100"  # serve_policy's default port


def policy_load(version: PolicyVersion, spec: WorkflowSpec, *, live: bool = False) -> Policy:
    kind = version.policy.kind
    if kind == PolicyKind.RULES:
        try:
            return RulesPolicy(spec, version.config)
        except SpecError as exc:
            raise ValidationError({f"config.{p.path}": p.message for p in exc.problems}) from None
    if kind == PolicyKind.MLP:
        return _neural_policy_cached(version, spec)
    if kind == PolicyKind.LM:
        return _lm_policy_load(version, spec, live=live)
    raise ValidationError({"kind": f"Policy kind {kind!r} cannot be loaded by this version of Caseloop."})


# --- neural policy cache (REST API decide=sync, decisions workers; bench/api.py) ---
# Reading, verifying and building a network took most of a live decision. A loaded neural version
# is kept per process and thread (a policy object is never shared between threads) and reused;
# the key holds the artifact's path and hash and the spec's hash, so new weights or another spec
# load afresh. At most NEURAL_CACHE_SIZE versions per thread, least recently used dropped first.
NEURAL_CACHE_SIZE = 8
_neural_cache = threading.local()


def _neural_policy_cached(version: PolicyVersion, spec: WorkflowSpec) -> Policy:
    from training.rl.features import spec_hash

    cache: OrderedDict = getattr(_neural_cache, "policies", None) or OrderedDict()
    _neural_cache.policies = cache
    key = (version.pk, version.artifact_path, version.artifact_hash, spec_hash(spec))
    policy = cache.get(key)
    if policy is None:
        policy = cache[key] = _neural_policy_load(version, spec)
        while len(cache) > NEURAL_CACHE_SIZE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return policy


def _neural_policy_load(version: PolicyVersion, spec: WorkflowSpec) -> Policy:
    from training.rl.checkpoint import CheckpointError, read_checkpoint
    from training.rl.policy import NeuralPolicy

    try:
        checkpoint = read_checkpoint(version.artifact_path, verify=True)
    except (CheckpointError, OSError) as exc:
        raise ValidationError({"artifact_path": f"Cannot load {version}: {exc}"}) from None
    if version.artifact_hash and checkpoint.metadata.get("weights_sha256") != version.artifact_hash:
        raise ValidationError(
            {"artifact_hash": f"The weights of {version} do not match their recorded hash."}
        )
    return NeuralPolicy(checkpoint.load_model(), checkpoint.featurizer(spec), spec, deterministic=True)


# --- end neural policy cache ---


def lm_server_client(version: PolicyVersion):
    """The HTTP client of the vLLM server that serves ``version`` (``VLLM_URL``)."""
    from training.rl.lm.client import ModelServerClient, served_model_name

    return ModelServerClient(
        getattr(settings, "VLLM_URL", "") or DEFAULT_LM_SERVER_URL,
        served_model_name(version.pk),
        timeout=float(getattr(settings, "LM_SERVER_TIMEOUT", 10)),
        retries=int(getattr(settings, "LM_SERVER_RETRIES", 3)),
        max_tokens=int(getattr(settings, "LM_MAX_TOKENS", 192)),
    )


def policy_server_ready(version: PolicyVersion) -> bool:
    """Whether ``version`` can decide live cases now: a language-model version needs its server up
    and serving it; other kinds run in the worker and are always ready."""
    if version.policy.kind != PolicyKind.LM:
        return True
    client = lm_server_client(version)
    try:
        return client.ready()
    finally:
        client.close()


def _lm_policy_load(version: PolicyVersion, spec: WorkflowSpec, *, live: bool) -> Policy:
    from training.rl.lm.checkpoint import LMCheckpointError, load_bundle, read_lm_checkpoint
    from training.rl.lm.policy import LMPolicy, LocalBackend, ServerBackend

    if live:  # the worker needs neither torch nor the weights: the server has them
        return LMPolicy(spec, ServerBackend(lm_server_client(version)))
    try:
        checkpoint = read_lm_checkpoint(version.artifact_path, verify=True)
        checkpoint.check_spec(spec)
    except (LMCheckpointError, OSError) as exc:
        raise ValidationError({"artifact_path": f"Cannot load {version}: {exc}"}) from None
    if version.artifact_hash and checkpoint.weights_sha256 != version.artifact_hash:
        raise ValidationError(
            {"artifact_hash": f"The weights of {version} do not match their recorded hash."}
        )
    try:
        bundle = load_bundle(checkpoint)
    except ImportError as exc:
        raise ValidationError(
            {"kind": f"Loading {version} needs the language-model extra (transformers): {exc}"}
        ) from None
    max_length = int(checkpoint.metadata.get("config", {}).get("model", {}).get("max_length", 1024))
    return LMPolicy(spec, LocalBackend(bundle, max_length=max_length))
