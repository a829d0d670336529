"""training.rl is pure torch: importing it (and using it) must not pull in Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_training_rl_imports_no_django():
    code = (
        "import sys\n"
        "import training.rl, training.rl.gym_adapter, training.rl.ppo, training.rl.checkpoint\n"
        "import training.rl.rollout, training.rl.quality, training.rl.summary\n"
        "from training.rl import evaluate, curriculum, vec, features, actions, nets, policy\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"django modules imported: {result.stdout} {result.stderr[-2000:]}"


def test_package_import_does_not_need_gymnasium():
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'gymnasium':\n"
        "        raise ImportError('gymnasium blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import training.rl\n"
        "from training.rl import train, PPOConfig, load_policy, evaluate_policy\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
