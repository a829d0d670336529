"""Reading the files under deploy/ and checking that the commands they run exist in this project.

There is no container engine or cluster on the test machines, so the compose file, the Kubernetes
manifests and the Dockerfile are checked by parsing them and resolving every command they name
against the code: ``manage.py`` commands, the Celery app and its queues, the WSGI module, ``-m``
modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_objects() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)]


def celery_queues() -> set[str]:
    from caseloop.celery import app

    return {queue.name for queue in app.conf.task_queues}


def manage_commands() -> set[str]:
    from django.core.management import get_commands

    return set(get_commands())


@dataclass(frozen=True)
class DockerStage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[DockerStage]:
    """The Dockerfile's stages with their instructions (comments dropped, continuations joined)."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    stages: list[DockerStage] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        instruction, _, arguments = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(DockerStage(base=parts[0], name=name, instructions=[]))
        elif stages:
            stages[-1].instructions.append((instruction, " ".join(arguments.split())))
        elif instruction != "ARG":
            raise AssertionError(f"{path}: {instruction} before the first FROM")
    return stages


def check_command(argv: list[str], where: str) -> list[str]:
    """Problems with one command line (empty when every part of it exists in the project)."""
    if not argv:
        return [f"{where}: empty command"]
    program, *rest = argv
    if program in ("sh", "bash") and rest[:1] == ["-c"]:
        problems = []
        for part in re.split(r"&&|\|\||;", rest[1]):
            if part.strip():
                problems += check_command(shlex.split(part.strip()), where)
        return problems
    if program in ("python", "python3"):
        if rest[:1] == ["manage.py"]:
            if len(rest) < 2 or rest[1] not in manage_commands():
                return [f"{where}: manage.py has no command {rest[1:2]}"]
            return []
        if rest[:1] == ["-m"]:
            return [] if importlib.util.find_spec(rest[1]) else [f"{where}: no module {rest[1]}"]
        if rest[:1] == ["-c"]:
            compile(rest[1], where, "exec")
            return []
        return [f"{where}: unexpected python invocation {argv}"]
    if program == "celery":
        return _check_celery(rest, where)
    if program == "gunicorn":
        return _check_gunicorn(rest, where)
    return [f"{where}: unknown program {program!r}"]


def _check_celery(args: list[str], where: str) -> list[str]:
    problems = []
    if args[:2] != ["-A", "caseloop"]:
        problems.append(f"{where}: celery must use the app caseloop (-A caseloop), got {args[:2]}")
    subcommand = args[2] if len(args) > 2 else ""
    if subcommand not in ("worker", "beat", "inspect"):
        problems.append(f"{where}: unexpected celery subcommand {subcommand!r}")
    if subcommand == "worker":
        if "-Q" not in args:
            problems.append(f"{where}: a worker must name its queue with -Q")
        else:
            queues = set(args[args.index("-Q") + 1].split(","))
            unknown = queues - celery_queues()
            if unknown:
                problems.append(f"{where}: queues {sorted(unknown)} are not in caseloop/celery.py")
    return problems


def _check_gunicorn(args: list[str], where: str) -> list[str]:
    problems = []
    target = next((a for a in args if not a.startswith("-") and ":" in a), "")
    module, _, attribute = target.partition(":")
    if module != "caseloop.wsgi":
        problems.append(f"{where}: gunicorn must serve caseloop.wsgi, got {target!r}")
    elif not hasattr(importlib.import_module(module), attribute or "application"):
        problems.append(f"{where}: {module} has no {attribute}")
    if "--config" in args:
        config = ROOT / args[args.index("--config") + 1]
        if not config.is_file():
            problems.append(f"{where}: gunicorn config {config} does not exist")
    return problems
