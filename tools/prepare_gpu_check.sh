#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI) before a GPU session: puts into .gpu_carry/ everything
# tools/gpu_check_on_device.sh needs on the GPU machine, which has Python 3.12, torch 2.11+cu130,
# nvcc 13.0, timm and 16 cores, but no OpenMMLab package and no network (docs/gpu.md):
#   .gpu_carry/wheels/*.whl     mmengine, mmdet, mmseg, mmpretrain, pycocotools, ftfy and every
#                               dependency the machine lacks (Python 3.12, manylinux x86_64)
#   .gpu_carry/mmcv-2.1.0-cp312-*.whl  mmcv with its CUDA ops for that Python, torch and the H200,
#                               prebuilt here (tools/gpu_machine_standin.sh build-mmcv) and taken
#                               from the wheel cache, with mmcv-built-for.txt (its torch and arch);
#                               with --build-on-device, the mmcv source archive instead, which the
#                               GPU machine then builds (an estimated 2.5-4 of a call's 10 minutes)
# It checks that every Requires-Dist of every carried wheel (for Python 3.12 on Linux) is carried
# or already on the machine, and that the carried files plus the working tree stay well under the
# 64 MiB a device call can take. Idempotent: it rebuilds .gpu_carry/wheels each time.
#
# Usage: bash tools/prepare_gpu_check.sh [--build-on-device]
# Environment: PYTHON (default .venv/bin/python), RAPIDNET_MM_CACHE (default ~/.cache/rapidnet_mm).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=$ROOT/.gpu_carry
PY=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${RAPIDNET_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rapidnet_mm}
LIMIT_MIB=48  # of the 64 MiB a device call carries; the rest is headroom

step() { printf '[prepare %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=tools/mmcv_build.sh
source "$ROOT/tools/mmcv_build.sh"

BUILD_ON_DEVICE=0
case "${1:-}" in
  '') ;;
  --build-on-device) BUILD_ON_DEVICE=1 ;;
  *) die "unknown option '$1'; usage: bash tools/prepare_gpu_check.sh [--build-on-device]" ;;
esac
[ -x "$PY" ] || die "no Python at $PY: run bash tools/setup_env.sh first, or set PYTHON"

# The versions of requirements/stack.txt and of the tested .venv, one of each.
WHEELS=(
  mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 mmpretrain==1.2.0
  pycocotools==2.0.11 ftfy==6.3.1
  # mmengine: addict, yapf (-> platformdirs), termcolor; and pkg_resources, which setuptools 81
  # removed (the machine's own setuptools may be newer)
  addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0 setuptools==80.10.2
  # mmdet: shapely, terminaltables; mmseg: prettytable; ftfy and prettytable: wcwidth
  shapely==2.2.0 terminaltables==3.1.10 prettytable==3.19.0 wcwidth==0.9.4
  # mmpretrain: mat4py, modelindex (-> model-index -> ordered-set), importlib-metadata
  # (-> lazy-importer)
  mat4py==0.6.0 modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0
  importlib-metadata==10.2.0 lazy-importer==0.1.0
)
# Already on the GPU machine (KINDS.md's package list of its image, read 2026-11-17); mmengine's
# opencv-python is satisfied by the machine's opencv-python-headless (the same cv2 module).
ON_DEVICE="torch torchvision timm numpy scipy matplotlib pyyaml rich six tqdm einops packaging
pillow opencv-python-headless opencv-python zipp regex click markdown"

py=${GPU_MACHINE_PY_TAG#py}
step "1/3 mmcv ${MMCV_VERSION} for the GPU machine (Python ${py:0:1}.${py:1}, torch ${GPU_MACHINE_TORCH}, sm ${GPU_MACHINE_ARCH})"
mkdir -p "$DEST" && rm -f "$DEST"/mmcv-*
wheel_dir=$(mmcv_wheel_dir "$CACHE" "$GPU_MACHINE_TORCH" cuda "$GPU_MACHINE_PY_TAG" "$GPU_MACHINE_ARCH")
if [ "$BUILD_ON_DEVICE" = 1 ]; then
  download_mmcv_archive "$PY" "$DEST"
  step "    the source archive, as asked: the GPU machine builds it, an estimated 2.5-4 of its 10 minutes (docs/gpu.md)"
elif ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
  cp "$wheel_dir"/mmcv-*.whl "$DEST/"
  # what the wheel was built against, which the GPU machine's script compares with its own
  built_for_line "$GPU_MACHINE_TORCH" "$GPU_MACHINE_ARCH" >"$DEST/mmcv-built-for.txt"
  step "    the prebuilt wheel $(basename "$DEST"/mmcv-*.whl) from $wheel_dir"
else
  die "no prebuilt mmcv wheel for the GPU machine in $wheel_dir: build it with \
'bash tools/gpu_machine_standin.sh build-mmcv' (19 min on 2 cores here), or pass --build-on-device to \
carry the source instead (the check then does not fit one device call: docs/gpu.md)"
fi

step "2/3 downloading ${#WHEELS[@]} wheels for CPython 3.12, manylinux x86_64 into $DEST/wheels"
rm -rf "$DEST/wheels" && mkdir -p "$DEST/wheels"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$DEST/wheels" "${WHEELS[@]}" 2> >(grep -v "^WARNING: Location" >&2)

step "3/3 checking every wheel's Requires-Dist (Python 3.12, Linux) against what travels"
"$PY" - "$DEST/wheels" "$ON_DEVICE" <<'PY'
import re
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement


def norm(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


env = default_environment()
env.update(python_version='3.12', python_full_version='3.12.3', sys_platform='linux',
           platform_system='Linux', platform_machine='x86_64', implementation_name='cpython',
           os_name='posix', extra='')
folder, on_device = Path(sys.argv[1]), {norm(n) for n in sys.argv[2].split()}
carried, needs = {}, {}
for wheel in sorted(folder.glob('*.whl')):
    with zipfile.ZipFile(wheel) as z:
        # the wheel's own, not one of a vendored package (setuptools/_vendor/...)
        meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA') and n.count('/') == 1)
        lines = z.read(meta).decode().splitlines()
    name = norm(next(l.split(':', 1)[1].strip() for l in lines if l.startswith('Name:')))
    carried[name] = wheel.name
    reqs = [Requirement(l.split(':', 1)[1].strip()) for l in lines if l.startswith('Requires-Dist:')]
    needs[name] = sorted({norm(r.name) for r in reqs if r.marker is None or r.marker.evaluate(env)})
missing = []
for name, reqs in needs.items():
    where = [f'{r} ({"carried" if r in carried else "on the machine" if r in on_device else "MISSING"})'
             for r in reqs]
    print(f'  {carried[name]}: ' + (', '.join(where) or 'no requirements'))
    missing += [f'{r} (needed by {name})' for r in reqs if r not in carried and r not in on_device]
if missing:
    sys.exit('error: not carried and not on the GPU machine: ' + ', '.join(missing)
             + '; add them to WHEELS in tools/prepare_gpu_check.sh')
print(f'  {len(carried)} wheels; every requirement is carried or on the machine')
PY

carry_bytes=$(du -sb "$DEST" | cut -f1)
tree_bytes=$(cd "$ROOT" && git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -n 1 | cut -f1)
total=$((carry_bytes + tree_bytes))
step "carried: .gpu_carry $((carry_bytes / 1024)) KiB + tracked files $((tree_bytes / 1024)) KiB = $((total / 1024)) KiB ($(awk "BEGIN{printf \"%.1f\", $total/1048576}") MiB of 64 MiB)"
[ "$total" -lt $((LIMIT_MIB * 1048576)) ] || die "the carried files take more than ${LIMIT_MIB} MiB"
step "done: run the check as docs/gpu.md says (carry .gpu_carry)"
