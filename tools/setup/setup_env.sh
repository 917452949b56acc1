#!/usr/bin/env bash
# Creates .venv in the repository root with the pinned OpenMMLab 2.x stack
# (requirements/stack.txt), mmcv 2.1.0 with its compiled ops, and rapidnet_mm in editable mode.
#
# Usage: setup_env.sh [--stack main|torch2.1]
#   main (default): requirements/stack.txt into .venv.
#   torch2.1: requirements/torch2.1.txt (the torch 2.1 environment most OpenMMLab 2.x users have)
#     into .venv-torch2.1, with mmcv built against that torch; the `core` tests run there.
#
# Idempotent: a second run checks what is installed and returns in seconds.
# The first run builds mmcv from source (4.5-10.5 min measured on 2 idle cores, up to ~35 on loaded
# ones); the built wheel is cached
# under $RAPIDNET_MM_CACHE (default ~/.cache/rapidnet_mm), keyed by mmcv version, torch version,
# device (cpu/cuda) and compiler flags, so later set-ups (and CI on the same machine) reuse it.
#
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
# RAPIDNET_MM_CACHE (wheel cache), RAPIDNET_MM_VENV (venv path, default <repo>/.venv or
# <repo>/.venv-torch2.1).
#
# CUDA: when torch sees a GPU, or FORCE_CUDA=1, mmcv is built with its CUDA ops (docs/install.md,
# "GPU"). TORCH_CUDA_ARCH_LIST picks the GPU architectures (default: the local GPUs', or
# MMCV_CUDA_ARCH_DEFAULT below when there is none). The compiler is the system nvcc ($CUDA_HOME/bin
# or PATH) when its CUDA version equals torch's; with no system nvcc, or RAPIDNET_MM_NVCC=pypi,
# the pinned toolchain of requirements/cuda.txt is installed into the venv instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${RAPIDNET_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rapidnet_mm}

STACK=main
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) [ $# -ge 2 ] || { echo "error: --stack needs a value: main or torch2.1" >&2; exit 2; }
             STACK=$2; shift 2 ;;
    --stack=*) STACK=${1#--stack=}; shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1': use --stack main or --stack torch2.1" >&2; exit 2 ;;
  esac
done
case "$STACK" in
  # What each stack installs, and the packages verify() imports there.
  main) REQUIREMENTS=$ROOT/requirements/stack.txt
        VENV=${RAPIDNET_MM_VENV:-$ROOT/.venv}
        EXTRA_IMPORTS="coremltools onnx onnxruntime" ;;
  torch2.1) REQUIREMENTS=$ROOT/requirements/torch2.1.txt
        VENV=${RAPIDNET_MM_VENV:-$ROOT/.venv-torch2.1}
        EXTRA_IMPORTS="onnx onnxruntime" ;;
  *) echo "error: unknown stack '$STACK': use --stack main or --stack torch2.1" >&2; exit 2 ;;
esac

# mmcv: PyPI has only the source archive for this torch, so we build it, with the version, checksum,
# compiler flags and source patches of tools/setup/mmcv_build.sh; --no-build-isolation because
# mmcv's setup.py imports torch.
# shellcheck source=tools/setup/mmcv_build.sh
source "$ROOT/tools/setup/mmcv_build.sh"

# CUDA builds only (the CPU build is unchanged by these):
# - with no GPU to ask, these architectures; CUDA 13 compiles nothing older than sm_75;
MMCV_CUDA_ARCH_DEFAULT="7.5;8.0;8.6;8.9;9.0;10.0;12.0"
# - requirements/cuda.txt pins a PyPI toolchain for this CUDA version only.
PYPI_NVCC_CUDA=13.0

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
  # Everything that decides what gets installed (the CUDA settings only when any is given).
  {
    cat "$REQUIREMENTS" "$ROOT/setup.py" "${BASH_SOURCE[0]}" "$ROOT/tools/setup/mmcv_build.sh"
    if [ -n "${FORCE_CUDA:-}${TORCH_CUDA_ARCH_LIST:-}${RAPIDNET_MM_NVCC:-}" ]; then
      printf 'cuda %s %s %s\n' "${FORCE_CUDA:-}" "${TORCH_CUDA_ARCH_LIST:-}" "${RAPIDNET_MM_NVCC:-}"
    fi
  } | sha256sum | cut -c1-16
}

STAMP=$VENV/.rapidnet_mm_stack
VPY=$VENV/bin/python

verify() {
  EXTRA_IMPORTS=$EXTRA_IMPORTS "$VPY" - <<'PY'
import importlib
import os
import mmcv.ops  # noqa: F401  (fails if mmcv was built without its ops)
import rapidnet_mm  # noqa: F401
import torch
if torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1':
    built = mmcv.ops.get_compiling_cuda_version()
    assert built == torch.version.cuda, f'mmcv has CUDA {built}, torch {torch.version.cuda}'
names = ['torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'timm',
         *os.environ['EXTRA_IMPORTS'].split(), 'rapidnet_mm']
print('  ' + ', '.join(f'{n} {importlib.import_module(n).__version__}' for n in names))
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stack_key)" ] && [ -x "$VPY" ]; then
  step "found $VENV (stack key $(stack_key)); checking imports"
  if verify 2>/dev/null; then
    step "nothing to do"
    exit 0
  fi
  step "the installed stack does not import (or lacks the CUDA ops asked for); reinstalling"
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

step "2/5 installing the pinned stack from requirements/$(basename "$REQUIREMENTS") (torch wheels are ~5 GB on first run)"
"$VPY" -m pip install --quiet --upgrade pip 'setuptools<81' wheel
"$VPY" -m pip install --quiet -r "$REQUIREMENTS"

TORCH_VERSION=$("$VPY" -c 'import torch; print(torch.__version__)')
DEVICE=$("$VPY" -c 'import os, torch; print("cuda" if torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1" else "cpu")')
PY_TAG=$("$VPY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
# mmcv's C++ standard: its own (c++17) where this torch's headers accept it, else what they need.
MMCV_CXX_STD=$(mmcv_cxx_std "$("$VPY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')")

use_pypi_nvcc() {
  [ "$TORCH_CUDA" = "$PYPI_NVCC_CUDA" ] || die "no system nvcc for CUDA ${TORCH_CUDA} (torch's), and \
requirements/cuda.txt pins CUDA ${PYPI_NVCC_CUDA}: install the CUDA ${TORCH_CUDA} toolkit and set CUDA_HOME"
  step "    installing the CUDA ${PYPI_NVCC_CUDA} compiler from PyPI (requirements/cuda.txt)"
  "$VPY" -m pip install --quiet -r "$ROOT/requirements/cuda.txt"
  CUDA_HOME=$TORCH_NVIDIA
  [ -x "$CUDA_HOME/bin/nvcc" ] || die "requirements/cuda.txt installed no nvcc at $CUDA_HOME/bin/nvcc"
}

setup_cuda_toolkit() {
  # Sets CUDA_HOME to an nvcc whose CUDA version is torch's, and the header paths torch's CUDA
  # headers need. Never falls back to a CPU build.
  TORCH_CUDA=$("$VPY" -c 'import torch; print(torch.version.cuda or "")')
  [ -n "$TORCH_CUDA" ] || die "torch ${TORCH_VERSION} is a CPU-only build: a CUDA mmcv needs a +cuXXX torch \
(or unset FORCE_CUDA for the CPU build)"
  # torch's CUDA wheels keep their headers (cuBLAS, cuSPARSE, ...) in the venv's nvidia/cuXX.
  TORCH_NVIDIA=$("$VPY" -c 'import os, sysconfig, torch
print(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu" + torch.version.cuda.split(".")[0]))')
  local system_nvcc=""
  if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
    system_nvcc=$CUDA_HOME/bin/nvcc
  elif command -v nvcc >/dev/null 2>&1; then
    system_nvcc=$(command -v nvcc)
  fi
  case "${RAPIDNET_MM_NVCC:-auto}" in
    pypi) use_pypi_nvcc ;;
    auto|system)
      if [ -z "$system_nvcc" ]; then
        [ "${RAPIDNET_MM_NVCC:-auto}" = auto ] || die "RAPIDNET_MM_NVCC=system but no nvcc on PATH or in \$CUDA_HOME/bin"
        use_pypi_nvcc
      else
        local found
        found=$(cuda_release "$system_nvcc")
        [ "$found" = "$TORCH_CUDA" ] || die "$system_nvcc is CUDA ${found:-of unknown version}, but torch \
${TORCH_VERSION} is built for CUDA ${TORCH_CUDA}: put a CUDA ${TORCH_CUDA} nvcc first (CUDA_HOME=/path/to/cuda-${TORCH_CUDA}), \
or set RAPIDNET_MM_NVCC=pypi to install the pinned one from PyPI into the venv"
        CUDA_HOME=$(toolkit_of "$system_nvcc")
      fi ;;
    *) die "RAPIDNET_MM_NVCC must be auto, system or pypi (got '${RAPIDNET_MM_NVCC}')" ;;
  esac
  export_cuda_build_env "$CUDA_HOME" "$TORCH_NVIDIA"
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$VPY" -c 'import torch
caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
print(";".join(f"{a}.{b}" for a, b in caps))' 2>/dev/null || true)
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$MMCV_CUDA_ARCH_DEFAULT}
  fi
  export TORCH_CUDA_ARCH_LIST
  check_cuda_arch_list "$TORCH_CUDA" "$TORCH_CUDA_ARCH_LIST"
  step "    CUDA ${TORCH_CUDA}: nvcc $(cuda_release "$CUDA_HOME/bin/nvcc") in $CUDA_HOME, architectures ${TORCH_CUDA_ARCH_LIST}"
}

if [ "$DEVICE" = cuda ]; then
  setup_cuda_toolkit
  WHEEL_DIR=$(mmcv_wheel_dir "$CACHE" "$TORCH_VERSION" cuda "$PY_TAG" "$TORCH_CUDA_ARCH_LIST")
  # The build folder is kept without the patch key, so that a patched rebuild reuses its objects.
  BUILD_NAME=$(basename "${WHEEL_DIR%_*}")
else
  WHEEL_DIR=$(mmcv_wheel_dir "$CACHE" "$TORCH_VERSION" cpu "$PY_TAG")
fi

build_mmcv() {
  local work=$CACHE/build/${BUILD_NAME:-$(basename "$WHEEL_DIR")}
  rm -rf "$work/dist" && mkdir -p "$work"
  step "    downloading the mmcv ${MMCV_VERSION} source archive"
  download_mmcv_archive "$VPY" "$work"
  unpack_mmcv_source "$work/mmcv-${MMCV_VERSION}.tar.gz" "$work" "$DEVICE"
  local src=$work/mmcv-${MMCV_VERSION}
  local log=$work/build.log
  step "    compiling $(mmcv_units "$src" "$DEVICE") C++$([ "$DEVICE" = cpu ] || echo ' and CUDA') units with MAX_JOBS=${MAX_JOBS:-2} (log: $log)"
  build_mmcv_wheel "$VPY" "$src" "$work/dist" "$log" "$DEVICE" "${MAX_JOBS:-2}"
  mkdir -p "$WHEEL_DIR"
  cp "$work"/dist/mmcv-*.whl "$WHEEL_DIR/"
  rm -rf "$work"
}

if ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  step "3/5 mmcv ${MMCV_VERSION}: using the cached wheel in $WHEEL_DIR"
else
  if [ "$DEVICE" = cuda ]; then
    step "3/5 mmcv ${MMCV_VERSION}: no cached wheel for torch ${TORCH_VERSION}/${DEVICE}; building it (58 CUDA units more than the CPU build, each once per architecture; sm_90 alone took 19-71 min on 2 cores, idle to loaded)"
  else
    step "3/5 mmcv ${MMCV_VERSION}: no cached wheel for torch ${TORCH_VERSION}/${DEVICE}; building it (4.5-35 min on 2 cores, idle to loaded)"
  fi
  build_mmcv
fi
if [ "$DEVICE" = cuda ]; then
  # Same version as a CPU mmcv that may be installed: replace it, without touching its deps.
  "$VPY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL_DIR"/mmcv-*.whl
  BUILT_CUDA=$("$VPY" -c 'import mmcv.ops; print(mmcv.ops.get_compiling_cuda_version())') \
    || die "the CUDA mmcv wheel in $WHEEL_DIR does not import (see above); delete that folder to rebuild"
  [ "$BUILT_CUDA" = "$TORCH_CUDA" ] || die "the mmcv wheel in $WHEEL_DIR has no CUDA ${TORCH_CUDA} compiled in \
(get_compiling_cuda_version() says '${BUILT_CUDA}'): delete that folder and rerun with a CUDA ${TORCH_CUDA} nvcc"
  step "    mmcv ops compiled with CUDA ${BUILT_CUDA}"
else
  "$VPY" -m pip install --quiet "$WHEEL_DIR"/mmcv-*.whl
fi

step "4/5 installing rapidnet_mm (editable)"
"$VPY" -m pip install --quiet --no-build-isolation --no-deps -e "$ROOT"
"$VPY" -m pip check >/dev/null || { "$VPY" -m pip check; die "pip check found broken requirements"; }

step "5/5 checking imports"
verify
stack_key >"$STAMP"
step "done: activate with 'source $VENV/bin/activate'"
