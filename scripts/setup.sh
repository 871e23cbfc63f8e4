#!/usr/bin/env bash
# Create .venv and install everything CareQA needs. Safe to re-run: it skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.careqa-installed"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python packages (first run builds llama-cpp-python from source: ~5 minutes on 2 cores)"
  "$VENV/bin/pip" install --quiet --upgrade pip
  # torch first and pinned: anything else would pull a multi-GB CUDA build.
  "$VENV/bin/pip" install --quiet "$(grep -E '^torch==' requirements.txt)"
  "$VENV/bin/pip" install --quiet -r requirements.txt
  "$VENV/bin/pip" install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
