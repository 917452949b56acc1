#!/usr/bin/env bash
# Creates .venv in the repository root with the pinned OpenMMLab 2.x stack
# (requirements/stack.txt), mmcv 2.1.0 with its compiled ops, and rapidnet_mm in editable mode.
#
# Idempotent: a second run checks what is installed and returns in seconds.
# The first run builds mmcv from source (10.5 min measured on 2 idle cores, up to ~35 on loaded
# ones); the built wheel is cached
# under $RAPIDNET_MM_CACHE (default ~/.cache/rapidnet_mm), keyed by mmcv version, torch version,
# device (cpu/cuda) and compiler flags, so later set-ups (and CI on the same machine) reuse it.
#
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
# RAPIDNET_MM_CACHE (wheel cache), RAPIDNET_MM_VENV (venv path, default <repo>/.venv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${RAPIDNET_MM_VENV:-$ROOT/.venv}
CACHE=${RAPIDNET_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rapidnet_mm}
REQUIREMENTS=$ROOT/requirements/stack.txt

# mmcv: PyPI has only the source archive for this torch, so we build it. Workarounds, each needed:
# - `-std=c++20` replaces the c++14/c++17 flags hard-coded in mmcv 2.1.0's setup.py, because
#   torch 2.14's ATen headers require C++20; the mmcv sources themselves are unchanged;
# - CFLAGS keep Python's defaults (-DNDEBUG -fwrapv -O3 -Wall) but drop debug info (-g0): about
#   40% faster to build, a 2 MB instead of 32 MB ops library, same speed (a bare CFLAGS=-g0 would
#   silently build at -O0);
# - --no-build-isolation because mmcv's setup.py imports torch.
MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
MMCV_CFLAGS="-DNDEBUG -fwrapv -O3 -Wall -g0"
MMCV_CXX_STD="-std=c++20"

step() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  die "no python3 found; set PYTHON=/path/to/python3.11"
}

stack_key() {
  # Everything that decides what gets installed.
  cat "$REQUIREMENTS" "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16
}

STAMP=$VENV/.rapidnet_mm_stack
VPY=$VENV/bin/python

verify() {
  "$VPY" - <<'PY'
import importlib
import mmcv.ops  # noqa: F401  (fails if mmcv was built without its ops)
import rapidnet_mm  # noqa: F401
names = ['torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'timm',
         'coremltools', 'onnx', 'onnxruntime', 'rapidnet_mm']
print('  ' + ', '.join(f'{n} {importlib.import_module(n).__version__}' for n in names))
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stack_key)" ] && [ -x "$VPY" ]; then
  step "found $VENV (stack key $(stack_key)); checking imports"
  if verify 2>/dev/null; then
    step "nothing to do"
    exit 0
  fi
  step "the installed stack does not import; reinstalling"
fi

PY=$(pick_python)
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 9), sys.version' \
  || die "$PY is too old: need Python >= 3.9 (tested with 3.11)"

if [ ! -x "$VPY" ]; then
  step "1/5 creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
else
  step "1/5 reusing $VENV"
fi

step "2/5 installing the pinned stack from requirements/stack.txt (torch wheels are ~5 GB on first run)"
"$VPY" -m pip install --quiet --upgrade pip 'setuptools<81' wheel
"$VPY" -m pip install --quiet -r "$REQUIREMENTS"

TORCH_VERSION=$("$VPY" -c 'import torch; print(torch.__version__)')
DEVICE=$("$VPY" -c 'import os, torch; print("cuda" if torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1" else "cpu")')
FLAGS_KEY=$(printf '%s %s' "$MMCV_CFLAGS" "$MMCV_CXX_STD" | sha256sum | cut -c1-8)
PY_TAG=$("$VPY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
WHEEL_DIR=$CACHE/wheels/mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${DEVICE}_${PY_TAG}_${FLAGS_KEY}

build_mmcv() {
  local work=$CACHE/build/mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${DEVICE}_${PY_TAG}_${FLAGS_KEY}
  rm -rf "$work" && mkdir -p "$work"
  step "    downloading the mmcv ${MMCV_VERSION} source archive"
  "$VPY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    -d "$work" "mmcv==${MMCV_VERSION}"
  local archive=$work/mmcv-${MMCV_VERSION}.tar.gz
  [ -f "$archive" ] || die "pip did not download $archive"
  echo "$MMCV_SHA256  $archive" | sha256sum --check --quiet \
    || die "mmcv source archive checksum mismatch: $archive"
  tar -xzf "$archive" -C "$work"
  local src=$work/mmcv-${MMCV_VERSION}
  grep -q -- '-std=c++1[47]' "$src/setup.py" \
    || die "mmcv setup.py has no -std=c++14/17 flag to replace: the C++20 workaround no longer fits"
  sed -i "s/-std=c++1[47]/${MMCV_CXX_STD}/g" "$src/setup.py"
  local total
  total=$(find "$src/mmcv/ops/csrc/pytorch" -maxdepth 2 -name '*.cpp' \
    -not -path '*/cuda/*' -not -path '*/npu/*' -not -path '*/mlu/*' -not -path '*/mps/*' | wc -l)
  local log=$work/build.log
  step "    compiling ${total} C++ units with MAX_JOBS=${MAX_JOBS:-2} (log: $log)"
  (
    cd "$src"
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} CFLAGS="$MMCV_CFLAGS" \
      "$VPY" setup.py bdist_wheel -d "$work/dist" >"$log" 2>&1
  ) &
  local pid=$! started=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    local done_units
    done_units=$(find "$src/build" -name '*.o' 2>/dev/null | wc -l)
    step "    mmcv build: ${done_units}/${total} units compiled, $(((SECONDS - started) / 60)) min elapsed"
  done
  wait "$pid" || { tail -n 30 "$log" >&2; die "mmcv build failed; full log: $log"; }
  mkdir -p "$WHEEL_DIR"
  cp "$work"/dist/mmcv-*.whl "$WHEEL_DIR/"
  rm -rf "$work"
}

if ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  step "3/5 mmcv ${MMCV_VERSION}: using the cached wheel in $WHEEL_DIR"
else
  step "3/5 mmcv ${MMCV_VERSION}: no cached wheel for torch ${TORCH_VERSION}/${DEVICE}; building it (10-35 min on 2 cores)"
  build_mmcv
fi
"$VPY" -m pip install --quiet "$WHEEL_DIR"/mmcv-*.whl

step "4/5 installing rapidnet_mm (editable)"
"$VPY" -m pip install --quiet --no-build-isolation --no-deps -e "$ROOT"
"$VPY" -m pip check >/dev/null || { "$VPY" -m pip check; die "pip check found broken requirements"; }

step "5/5 checking imports"
verify
stack_key >"$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
