#!/usr/bin/env bash
# Runs ON the GPU machine (docs/gpu.md): installs what tools/prepare_gpu_check.sh put into
# .gpu_carry/ into /tmp/site, builds mmcv 2.1.0's CUDA ops there against the machine's torch
# (16 jobs, sm_90 only, the source patches of tools/mmcv_build.sh) unless a built mmcv wheel for
# this Python was carried, then runs tools/gpu_check.py in the time that is left.
#
# The built mmcv wheel is copied to the output folder, so that it comes back from the device
# call; put it into .gpu_carry/ and later calls skip the build.
#
# Usage: bash tools/gpu_check_on_device.sh [gpu_check.py options, e.g. --stages infer]
# Environment: OUT (output folder; the device tool sets it), GPU_CHECK_SECONDS (what the whole
# script may take, default 570: a 600 s call less a margin), PYTHON (default python3),
# TORCH_CUDA_ARCH_LIST (default 9.0, the H200), MAX_JOBS (default: the number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=$ROOT/.gpu_carry
SITE=/tmp/site
OUT=${OUT:-$ROOT/gpu_check_out}
PY=${PYTHON:-python3}
TOTAL_S=${GPU_CHECK_SECONDS:-570}
STARTED=$SECONDS

step() { printf '[on-device %s +%ds] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - STARTED))" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/mmcv_build.sh
source "$ROOT/tools/mmcv_build.sh"

[ -d "$CARRY/wheels" ] || die "no $CARRY/wheels: run bash tools/prepare_gpu_check.sh on the \
development machine and name .gpu_carry in the device call's carry list"
mkdir -p "$OUT"

step "1/3 installing $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels into $SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$CARRY"/wheels/*.whl
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"error: torch {torch.__version__} sees no GPU here; this script is for the GPU machine")
print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")'

PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
for first in "$CARRY"/mmcv-"${MMCV_VERSION}"-"${PY_TAG}"-*.whl.part-aa; do
  # a built wheel over the 16 MiB a returned file may have came back in parts: join them
  [ -f "$first" ] && cat "${first%aa}"?? >"${first%.part-aa}"
done
prebuilt=$(ls "$CARRY"/mmcv-"${MMCV_VERSION}"-"${PY_TAG}"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$prebuilt" ]; then
  step "2/3 mmcv: installing the carried $(basename "$prebuilt")"
  wheel=$prebuilt
else
  archive=$CARRY/mmcv-${MMCV_VERSION}.tar.gz
  [ -f "$archive" ] || die "no $archive and no built mmcv wheel for $PY_TAG in $CARRY"
  check_mmcv_archive "$archive"
  nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] || die "no nvcc on PATH: the mmcv CUDA build needs CUDA's compiler"
  CUDA_HOME=$(cd "$(dirname "$(readlink -f "$nvcc")")/.." && pwd)
  torch_cuda=$("$PY" -c 'import torch; print(torch.version.cuda)')
  nvcc_cuda=$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  [ "$nvcc_cuda" = "$torch_cuda" ] || die "nvcc is CUDA $nvcc_cuda but torch is built for CUDA \
$torch_cuda: put a CUDA $torch_cuda nvcc first on PATH"
  # CUDA 13 keeps thrust/cub/nv/target under include/cccl; torch's CUDA headers include cuBLAS
  # and cuSPARSE headers, which its nvidia wheels carry.
  torch_nvidia=$("$PY" -c 'import os, torch, nvidia
print(os.path.join(list(nvidia.__path__)[0], "cu" + torch.version.cuda.split(".")[0], "include"))' 2>/dev/null || true)
  export CUDA_HOME CPATH="$CUDA_HOME/include/cccl:$CUDA_HOME/include${torch_nvidia:+:$torch_nvidia}${CPATH:+:$CPATH}"
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  build=/tmp/mmcv_build
  rm -rf "$build" && mkdir -p "$build" && tar -xzf "$archive" -C "$build"
  src=$build/mmcv-${MMCV_VERSION}
  patch_mmcv_sources "$src" cuda
  units=$(mmcv_units "$src" cuda)
  jobs=${MAX_JOBS:-$(nproc)}
  step "2/3 mmcv: building ${units} C++/CUDA units, ${jobs} jobs, nvcc ${nvcc_cuda} in ${CUDA_HOME}, arch ${TORCH_CUDA_ARCH_LIST}"
  (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS=$jobs CFLAGS="$MMCV_CFLAGS" \
    "$PY" setup.py bdist_wheel -d "$build/dist" >"$build/build.log" 2>&1) &
  pid=$! build_start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    step "    $(find "$src/build" -name '*.o' 2>/dev/null | wc -l)/${units} units compiled"
  done
  wait "$pid" || { tail -n 40 "$build/build.log" >&2; cp "$build/build.log" "$OUT/mmcv_build.log"; \
    die "the mmcv CUDA build failed (log: $OUT/mmcv_build.log)"; }
  step "    mmcv built in $((SECONDS - build_start)) s"
  wheel=$(ls "$build"/dist/mmcv-*.whl)
  step "    $(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB, copied to $OUT (carry it in .gpu_carry next time)"
  if [ "$(stat -c %s "$wheel")" -le $((15 * 1048576)) ]; then
    cp "$wheel" "$OUT/"
  else  # the device tool returns files of up to 16 MiB each
    split -b 15M -a 2 "$wheel" "$OUT/$(basename "$wheel").part-"
  fi
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$wheel"
"$PY" -c 'import mmcv.ops, torch
built = mmcv.ops.get_compiling_cuda_version()
assert built == torch.version.cuda, f"mmcv ops compiled with CUDA {built!r}, torch has {torch.version.cuda}"
print(f"  mmcv {mmcv.__version__}, ops compiled with CUDA {built}")'

left=$((TOTAL_S - (SECONDS - STARTED)))
[ "$left" -ge 1 ] || left=1  # no time left: every stage is recorded as skipped for the budget
step "3/3 tools/gpu_check.py with --budget-s ${left}"
exec "$PY" "$ROOT/tools/gpu_check.py" --out "$OUT" --budget-s "$left" --work-dir /tmp/gpu_check "$@"
