#!/usr/bin/env bash
# Runs ON the GPU machine (docs/gpu.md): installs what tools/prepare_gpu_check.sh put into
# .gpu_carry/ into /tmp/site, installs the carried mmcv 2.1.0 CUDA wheel (prebuilt here by
# tools/gpu_machine_standin.sh build-mmcv) or, when the source was carried instead, builds mmcv's
# CUDA ops there against the machine's torch (all cores, sm_90 only, the flags and patches of
# tools/mmcv_build.sh), then runs tools/gpu_check.py in the time that is left.
#
# Everything that can stop it is checked before anything is installed or built: the GPU, the
# carried mmcv (a wheel built for this torch, or the source and an nvcc of torch's CUDA).
# A wheel built there is copied to the output folder with mmcv-built-for.txt, so that both come
# back from the device call; put them into .gpu_carry/ and later calls skip the build.
#
# Usage: bash tools/gpu_check_on_device.sh [gpu_check.py options, e.g. --stages infer]
# With --rehearse-on-cpu it needs no GPU: the same checks, installs and imports, then
# gpu_check.py's CPU rehearsal (run so in the stand-in for the GPU machine's Python,
# tools/gpu_machine_standin.sh).
# Environment: OUT (output folder; the device tool sets it), GPU_CHECK_SECONDS (what the whole
# script may take, default 570: a 600 s call less a margin), PYTHON (default python3), GPU_CARRY
# (default <checkout>/.gpu_carry), TORCH_CUDA_ARCH_LIST (default GPU_MACHINE_ARCH of
# tools/mmcv_build.sh, the H200's 9.0), MAX_JOBS (default: the number of cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=${GPU_CARRY:-$ROOT/.gpu_carry}
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

REHEARSE=0
for arg in "$@"; do [ "$arg" != --rehearse-on-cpu ] || REHEARSE=1; done
"$PY" -c 'import sys, torch
if not torch.cuda.is_available():
    if sys.argv[1] == "1":
        print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, no GPU: rehearsing on CPU")
        sys.exit(0)
    sys.exit(f"error: torch {torch.__version__} sees no GPU here; this script is for the GPU machine "
             "(or add --rehearse-on-cpu)")
print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")' "$REHEARSE"
TORCH_HERE=$("$PY" -c 'import torch; print(torch.__version__)')

# mmcv: a carried wheel for this Python and this torch, or the source and a matching nvcc.
PY_TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
for first in "$CARRY"/mmcv-"${MMCV_VERSION}"-"${PY_TAG}"-*.whl.part-aa; do
  # a built wheel over the 16 MiB a returned file may have came back in parts: join them
  [ -f "$first" ] && cat "${first%aa}"?? >"${first%.part-aa}"
done
prebuilt=$(ls "$CARRY"/mmcv-"${MMCV_VERSION}"-"${PY_TAG}"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$prebuilt" ]; then
  # A prebuilt wheel must have been built against this very torch (its C++ ABI): stop otherwise.
  built_for=$(built_for_torch "$CARRY/mmcv-built-for.txt")
  [ "$built_for" = "$TORCH_HERE" ] || die "the carried $(basename "$prebuilt") was built for torch \
${built_for:-(unknown: no mmcv-built-for.txt beside it)}, this machine has torch $TORCH_HERE: set \
GPU_MACHINE_TORCH in tools/mmcv_build.sh and rebuild it (tools/gpu_machine_standin.sh build-mmcv), \
or carry the source (tools/prepare_gpu_check.sh --build-on-device)"
else
  archive=$CARRY/mmcv-${MMCV_VERSION}.tar.gz
  [ -f "$archive" ] || die "neither a built mmcv wheel for $PY_TAG nor $archive in $CARRY: run \
bash tools/prepare_gpu_check.sh"
  check_mmcv_archive "$archive"
  nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] || die "no nvcc on PATH: the mmcv CUDA build needs CUDA's compiler"
  torch_cuda=$("$PY" -c 'import torch; print(torch.version.cuda)')
  nvcc_cuda=$(cuda_release "$nvcc")
  [ "$nvcc_cuda" = "$torch_cuda" ] || die "nvcc is CUDA $nvcc_cuda but torch is built for CUDA \
$torch_cuda: put a CUDA $torch_cuda nvcc first on PATH"
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$GPU_MACHINE_ARCH}
  check_cuda_arch_list "$torch_cuda" "$TORCH_CUDA_ARCH_LIST"
fi
mkdir -p "$OUT"

step "1/3 installing $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels into $SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$CARRY"/wheels/*.whl
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}

if [ -n "$prebuilt" ]; then
  step "2/3 mmcv: installing the carried $(basename "$prebuilt") (built for torch $built_for)"
  wheel=$prebuilt
else
  export_cuda_build_env "$(toolkit_of "$nvcc")" "$("$PY" -c 'import os, torch, nvidia
print(os.path.join(list(nvidia.__path__)[0], "cu" + torch.version.cuda.split(".")[0]))')"
  build=/tmp/mmcv_build
  unpack_mmcv_source "$archive" "$build" cuda
  src=$build/mmcv-${MMCV_VERSION}
  jobs=${MAX_JOBS:-$(nproc)}
  step "2/3 mmcv: building $(mmcv_units "$src" cuda) C++/CUDA units, ${jobs} jobs, nvcc ${nvcc_cuda} in ${CUDA_HOME}, arch ${TORCH_CUDA_ARCH_LIST}"
  # the log goes to $OUT, so that it comes back from the device call, failed or not
  MMCV_PROGRESS_S=20 build_mmcv_wheel "$PY" "$src" "$build/dist" "$OUT/mmcv_build.log" cuda "$jobs"
  wheel=$(ls "$build"/dist/mmcv-*.whl)
  step "    $(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB, copied to $OUT with mmcv-built-for.txt (carry both in .gpu_carry next time)"
  built_for_line "$TORCH_HERE" "$TORCH_CUDA_ARCH_LIST" >"$OUT/mmcv-built-for.txt"
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
