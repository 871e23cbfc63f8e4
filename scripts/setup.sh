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

# The AWS CDK command line (`npx cdk synth`), exactly as pinned in package-lock.json.
if command -v npm >/dev/null; then
  node_stamp="node_modules/.careqa-installed"
  node_want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
  if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$node_want" ]; then
    echo "==> installing the AWS CDK command line from package-lock.json (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$node_want" > "$node_stamp"
  fi
else
  echo "==> npm not found: skipping the AWS CDK command line (needed only for 'npx cdk synth' and its test)" >&2
fi
