"""The engine and the packs import no Django: RL workers and benchmarks use them bare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(imports: str) -> set[str]:
    probe = f"import sys\n{imports}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_engine_and_claims_pack_import_without_django() -> None:
    modules = _modules_after("import workflows.engine, workflows.packs, workflows.packs.claims")
    assert "workflows.packs.claims" in modules, "the probe must actually import the pack"
    assert not {name for name in modules if name == "django" or name.startswith("django.")}


def test_the_probe_would_see_django() -> None:
    # Guard against a probe that cannot fail.
    assert "django" in _modules_after("import django")
