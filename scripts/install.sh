#!/usr/bin/env bash
# Set up everything on a fresh Linux machine: a virtualenv in .venv with clipatlas, its
# optional extras and the test tools. torch is pinned first so pip never pulls a larger build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_PIN=${CLIPATLAS_TORCH_PIN:-"torch==2.14.1 torchvision==0.29.1"}
if [ "$(uname -m)" = "aarch64" ] && [ -z "${CLIPATLAS_TORCH_PIN:-}" ]; then
  TORCH_PIN="torch==2.9.1 torchvision==0.24.1"
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_PIN
.venv/bin/python -m pip install --quiet -e ".[dev,open_clip,server,caption,distributed,onnx]"
echo "clipatlas installed in .venv (activate with: source .venv/bin/activate)"
