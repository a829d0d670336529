"""``manage.py serve_policy <version_id> [--print] [--host H] [--port P]``: serve a language-model
policy version with vLLM's OpenAI-compatible server, started from the version's checkpoint.

The checkpoint is verified first (every file's sha256, and the weights against the version's
recorded hash). ``--print`` prints the exact command instead of running it; otherwise this
process becomes the server (``exec``), so signals and the exit status are the server's own.
The ``decisions`` workers reach it at ``VLLM_URL`` (``http://<host>:<port>``).
"""

from __future__ import annotations

import os
import shlex
import sys

from django.core.management.base import BaseCommand, CommandError

from training.models import PolicyKind, PolicyVersion
from training.rl.lm.checkpoint import LMCheckpointError, read_lm_checkpoint
from training.rl.lm.client import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    SERVE_ENVIRONMENT,
    serve_command,
    serve_environment,
    served_model_name,
)


class Command(BaseCommand):
    help = "Serve a language-model policy version with vLLM's OpenAI-compatible server (or --print it)."

    def add_arguments(self, parser):
        parser.add_argument("version_id", type=int, help="PolicyVersion id (a policy of kind lm).")
        parser.add_argument("--print", action="store_true", help="Print the command instead of running it.")
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8100, help="Port to listen on (default 8100).")
        parser.add_argument(
            "--gpu-memory-utilization",
            type=float,
            default=DEFAULT_GPU_MEMORY_UTILIZATION,
            help="vLLM's memory share (on CPU: of host memory) for weights and KV cache (default 0.2).",
        )
        parser.add_argument(
            "--python", default=sys.executable, help="Python with vllm installed (default: this one)."
        )

    def handle(self, *args, **options):
        version = PolicyVersion.objects.select_related("policy").filter(pk=options["version_id"]).first()
        if version is None:
            raise CommandError(f"No policy version {options['version_id']}.")
        if version.policy.kind != PolicyKind.LM:
            raise CommandError(
                f"{version} is a {version.policy.kind} policy; only language-model (lm) versions are served."
            )
        if not version.artifact_path:
            raise CommandError(f"{version} has no artifact to serve.")
        try:
            checkpoint = read_lm_checkpoint(version.artifact_path, verify=True)
        except (LMCheckpointError, OSError) as exc:
            raise CommandError(f"Cannot serve {version}: {exc}") from None
        if version.artifact_hash and checkpoint.weights_sha256 != version.artifact_hash:
            raise CommandError(f"The weights of {version} do not match their recorded hash.")
        if not 1 <= options["port"] <= 65535:
            raise CommandError("--port must be between 1 and 65535.")
        max_model_len = int(checkpoint.metadata.get("config", {}).get("model", {}).get("max_length", 1024))
        command = serve_command(
            checkpoint.path,
            model_name=served_model_name(version.pk),
            host=options["host"],
            port=options["port"],
            max_model_len=max_model_len,
            gpu_memory_utilization=options["gpu_memory_utilization"],
            python=options["python"],
        )
        if options["print"]:
            settings = " ".join(f"{name}={value}" for name, value in SERVE_ENVIRONMENT.items())
            self.stdout.write(f"{settings} {shlex.join(command)}")
            return
        address = f"http://{options['host']}:{options['port']}"
        self.stderr.write(
            f"Serving {version} as {served_model_name(version.pk)} on {address} "
            "(set VLLM_URL to that address for the decisions workers)."
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, serve_environment())  # noqa: S606 (a fixed argv, no shell)
