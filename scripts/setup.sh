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
  echo "==> installing Python packages"
  "$VENV/bin/pip" install --quiet --upgrade pip
  # torch first and pinned: anything else would pull a multi-GB CUDA build.
  "$VENV/bin/pip" install --quiet "$(grep -E '^torch==' requirements.txt)"
  # llama-cpp-python compiles llama.cpp. Built for the build machine's CPU (-march=native, its default), it
  # runs ggml's Intel AMX kernels wherever the CPU advertises AMX, and those crash (SIGSEGV in
  # ggml_backend_amx_mul_mat, seen on this project's build machines). So it is built portable (AVX2, no
  # AMX), once, into a wheel kept under a name that includes these flags; pip's own cache could hand back
  # a native build of the same version.
  llama_req=$(grep -E '^llama-cpp-python==' requirements.txt)
  llama_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
  llama_flags="$llama_flags -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/careqa/wheels/$(echo "$llama_req $llama_flags" | sha256sum | cut -c1-16)"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "==> building $llama_req for this CPU family (portable AVX2, no AMX): ~5 minutes on 2 cores"
    CMAKE_ARGS="$llama_flags" "$VENV/bin/pip" wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$wheels" "$llama_req"
  fi
  "$VENV/bin/pip" install --quiet --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
  "$VENV/bin/pip" install --quiet -r requirements.txt
  "$VENV/bin/pip" install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi

# The ONNX embedding backends (the default) run an export of the packaged MiniLM weights: made here, once, with
# torch and onnxruntime's tools (about 15 s), and kept under $VENV/share/careqa/onnx keyed by the weights
# package's version. A later run finds it cached in a second; nothing downloads.
"$VENV/bin/python" -m endpoints.onnx_export

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
