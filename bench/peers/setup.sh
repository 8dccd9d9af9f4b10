#!/usr/bin/env bash
# The peers' own environments for bench/transplant.py --pairs, under runs/peers/ (ignored by git; never a
# dependency of tokenshift). Usage: bash bench/peers/setup.sh [TOKENADAPT_CHECKOUT]
#   TOKENADAPT_CHECKOUT: a checkout of Tinycompany-AI/tokenadapt at 3f7ff1d (Apache-2.0); its src/ is copied to
#   runs/peers/tokenadapt/src. mergekit comes from PyPI (0.1.5, LGPL-3.0) into its own venv.
# torch==2.13.0 is the CPU wheel on this disk; a bare `torch` would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS=runs/peers
mkdir -p "$PEERS"
PY=${PY:-python3}
if [ ! -x "$PEERS/tokenadapt-venv/bin/python" ]; then
  "$PY" -m venv "$PEERS/tokenadapt-venv"
  "$PEERS/tokenadapt-venv/bin/pip" install -q torch==2.13.0 transformers==5.24.0 tqdm numpy faiss-cpu \
    sentencepiece protobuf safetensors
fi
if [ ! -x "$PEERS/mergekit-venv/bin/python" ]; then
  "$PY" -m venv "$PEERS/mergekit-venv"
  "$PEERS/mergekit-venv/bin/pip" install -q torch==2.13.0
  "$PEERS/mergekit-venv/bin/pip" install -q mergekit==0.1.5
fi
if [ $# -ge 1 ]; then
  mkdir -p "$PEERS/tokenadapt"
  cp -r "$1/src" "$PEERS/tokenadapt/"
fi
test -f "$PEERS/tokenadapt/src/heuristics.py" || echo "runs/peers/tokenadapt/src is missing: pass a tokenadapt checkout"
.venv/bin/python bench/peers/export.py "$PEERS/models" smollm2 gemma3 --tokenizers gpt2 smollm2 gemma3
