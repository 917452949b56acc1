#!/usr/bin/env bash
# A stand-in, on this machine, for the GPU machine's Python (docs/gpu.md): an Ubuntu 24.04 root
# file system, whose python3.12 is the GPU machine's 3.12.3, with a venv of the GPU machine's torch
# (2.11.0; PyPI's build is 2.11.0+cu130, the same as there) and the packages that
# tools/prepare_gpu_check.sh counts on finding there. Debian 12 has no Python 3.12.
#
#   build-mmcv  builds the mmcv 2.1.0 CUDA wheel for that Python and torch (sm_90 unless
#               TORCH_CUDA_ARCH_LIST says otherwise) with this machine's CUDA 13.0 nvcc and the
#               flags and patches of tools/mmcv_build.sh, checks that its ops report CUDA 13.0,
#               and puts it into the wheel cache, where prepare_gpu_check.sh takes it from. The
#               GPU machine then installs mmcv in seconds instead of building it for 2.5-4 minutes of
#               its 10. 19 min on 2 cores here; a build interrupted keeps its objects.
#   run CMD...  runs CMD in this checkout (mounted at /src) with that venv first on PATH, then
#               this machine's CUDA 13.0 toolkit (mounted read-only) if it has one, e.g. the
#               GPU machine's script, rehearsed on CPU:
#               bash tools/gpu_machine_standin.sh run bash tools/gpu_check_on_device.sh --rehearse-on-cpu
#   create      makes (or checks) the root file system and the venv; the other two do it first.
#   remove      unmounts whatever is still mounted in it, then deletes it (never delete it by hand
#               while /src, this checkout, or /dev is mounted there).
#
# Needs root (debootstrap, chroot, bind mounts), archive.ubuntu.com and PyPI.
# Environment: RAPIDNET_MM_CACHE (default ~/.cache/rapidnet_mm; the root file system is its
# noble-py312/, about 6 GB), CUDA_HOME (default: the toolkit of the nvcc on PATH), MAX_JOBS
# (default 2), TORCH_CUDA_ARCH_LIST (default 9.0, the H200), and for `run`: OUT,
# GPU_CHECK_SECONDS, PYTHONUNBUFFERED, which are passed in.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RAPIDNET_MM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rapidnet_mm}
FS=$CACHE/noble-py312
VENV=/opt/py312  # inside $FS
UBUNTU_MIRROR=http://archive.ubuntu.com/ubuntu
# shellcheck source=tools/mmcv_build.sh
source "$ROOT/tools/mmcv_build.sh"  # MMCV_*, GPU_MACHINE_* and the build functions
# Debian 12 carries no Ubuntu archive key: this package's checksum is pinned, and its key then
# checks everything debootstrap fetches.
UBUNTU_KEYRING_DEB=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
UBUNTU_KEYRING_SHA256=36de43b15853ccae0028e9a767613770c704833f82586f28eb262f0311adb8a8
# The GPU machine's versions where KINDS.md gives them (torch: GPU_MACHINE_TORCH of
# tools/mmcv_build.sh; torchvision, numpy; Python 3.12.3 is noble's own); the rest of its package
# list that the check uses, at PyPI's newest.
DEVICE_PACKAGES=(
  "torch==${GPU_MACHINE_TORCH%+*}" torchvision==0.26.0 numpy==2.5.2
  timm scipy matplotlib pyyaml rich six tqdm einops packaging pillow opencv-python-headless
  zipp regex click markdown
  # the build's tools (there: ninja, wheel and setuptools are in the image too)
  ninja wheel 'setuptools<82'
)

step() { printf '[standin %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
[ "$GPU_MACHINE_PY_TAG" = py312 ] || die "the stand-in has Ubuntu 24.04's Python 3.12, but \
GPU_MACHINE_PY_TAG in tools/mmcv_build.sh is ${GPU_MACHINE_PY_TAG}: the stand-in needs another Ubuntu release"
[ "$(id -u)" = 0 ] || die "the stand-in needs root (debootstrap, chroot, mount): run it as root"

MOUNTED=()
unmount_all() {
  # A process of the command that is still exiting can keep a mount busy for a moment: retry, then
  # detach it lazily (it goes once that process has gone).
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[$i]}" 2>/dev/null || { sleep 2; umount "${MOUNTED[$i]}" 2>/dev/null; } \
      || umount --lazy "${MOUNTED[$i]}"
  done
}
trap unmount_all EXIT

bind() {
  # bind SRC DEST [ro]: bind-mount SRC on $FS/DEST for this script's run, unless already there.
  local target=$FS$2
  mkdir -p "$target"
  mountpoint -q "$target" && return 0
  mount --bind "$1" "$target"
  MOUNTED+=("$target")
  [ "${3:-}" != ro ] || mount -o remount,ro,bind "$target"
}

toolkit() {
  # The CUDA toolkit to build with: $CUDA_HOME, or the one of the nvcc on PATH; CUDA 13.0 as torch.
  local tk=${CUDA_HOME:-}
  if [ -z "$tk" ]; then
    command -v nvcc >/dev/null 2>&1 || die "no nvcc on PATH and no CUDA_HOME: the mmcv CUDA build needs CUDA 13.0's nvcc"
    tk=$(toolkit_of "$(command -v nvcc)")
  fi
  [ -x "$tk/bin/nvcc" ] || die "no nvcc in $tk/bin"
  local found
  found=$(cuda_release "$tk/bin/nvcc")
  [ "$found" = "$GPU_MACHINE_CUDA" ] || die "$tk/bin/nvcc is CUDA ${found:-of unknown version}, but the GPU \
machine's torch ${GPU_MACHINE_TORCH} is built for CUDA ${GPU_MACHINE_CUDA}: set CUDA_HOME to a CUDA ${GPU_MACHINE_CUDA} toolkit"
  echo "$tk"
}

in_fs() {
  # in_fs CMD...: CMD inside the root file system, with a clean environment and the venv first.
  chroot "$FS" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH="$VENV/bin:${TOOLKIT_BIN:+$TOOLKIT_BIN:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ${OUT:+OUT="$OUT"} ${GPU_CHECK_SECONDS:+GPU_CHECK_SECONDS="$GPU_CHECK_SECONDS"} \
    ${PYTHONUNBUFFERED:+PYTHONUNBUFFERED="$PYTHONUNBUFFERED"} ${MAX_JOBS:+MAX_JOBS="$MAX_JOBS"} \
    "$@"
}

create() {
  if [ ! -x "$FS/usr/bin/python3.12" ]; then
    command -v debootstrap >/dev/null 2>&1 || die "no debootstrap: apt-get install debootstrap"
    local keys=$CACHE/ubuntu-keyring
    rm -rf "$keys" && mkdir -p "$keys"
    step "1/2 Ubuntu 24.04 (noble) root file system in $FS (about a minute)"
    curl -fsS -o "$keys/keyring.deb" "$UBUNTU_MIRROR/$UBUNTU_KEYRING_DEB"
    echo "$UBUNTU_KEYRING_SHA256  $keys/keyring.deb" | sha256sum --check --quiet \
      || die "checksum mismatch: $UBUNTU_MIRROR/$UBUNTU_KEYRING_DEB"
    dpkg-deb -x "$keys/keyring.deb" "$keys"
    # noble's debootstrap script is the generic Ubuntu one (Debian 12's debootstrap predates noble)
    debootstrap --variant=minbase --components=main,universe \
      --keyring="$keys/usr/share/keyrings/ubuntu-archive-keyring.gpg" \
      --include=python3.12,python3.12-dev,python3.12-venv,g++,ca-certificates \
      noble "$FS" "$UBUNTU_MIRROR" /usr/share/debootstrap/scripts/gutsy >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  fi
  # This machine's certificate authorities (its package proxy's among them), for pip in there.
  cp /etc/ssl/certs/ca-certificates.crt "$FS/etc/ssl/certs/ca-certificates.crt"
  cp /etc/resolv.conf "$FS/etc/resolv.conf"
  bind /proc /proc
  bind /dev /dev
  bind "$ROOT" /src
  [ -x "$FS$VENV/bin/python" ] || in_fs python3.12 -m venv "$VENV"
  step "2/2 the GPU machine's packages in $VENV (torch ${GPU_MACHINE_TORCH}: 4.7 GB the first time)"
  in_fs pip install --quiet "${DEVICE_PACKAGES[@]}"
  in_fs python -c 'import sys, torch
print(f"  Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})")
assert torch.__version__ == sys.argv[1], f"torch {torch.__version__}, not the GPU machine'"'"'s {sys.argv[1]}"' \
    "$GPU_MACHINE_TORCH"
}

build_mmcv() {
  local tk arch wheel_dir
  tk=$(toolkit)
  arch=${TORCH_CUDA_ARCH_LIST:-$GPU_MACHINE_ARCH}
  check_cuda_arch_list "$GPU_MACHINE_CUDA" "$arch"
  wheel_dir=$(mmcv_wheel_dir "$CACHE" "$GPU_MACHINE_TORCH" cuda "$GPU_MACHINE_PY_TAG" "$arch")
  if ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    step "mmcv: already built: $(ls "$wheel_dir"/mmcv-*.whl)"
    return
  fi
  bind "$tk" "$tk" ro
  local build=$FS/build py=$ROOT/.venv/bin/python
  [ -x "$py" ] || die "no $py to download the mmcv source with: run bash tools/setup_env.sh"
  rm -rf "$build/dist" && mkdir -p "$build"
  download_mmcv_archive "$py" "$build"
  unpack_mmcv_source "$build/mmcv-${MMCV_VERSION}.tar.gz" "$build" cuda
  local src=$build/mmcv-${MMCV_VERSION}
  step "mmcv: compiling $(mmcv_units "$src" cuda) C++ and CUDA units for Python 3.12, torch ${GPU_MACHINE_TORCH}, arch ${arch}, ${MAX_JOBS:-2} jobs (log: $build/build.log)"
  local torch_nvidia  # torch's CUDA wheels' headers (cuBLAS, cuSPARSE) in there
  torch_nvidia=$(in_fs python -c 'import os, sys, nvidia
print(os.path.join(list(nvidia.__path__)[0], "cu" + sys.argv[1].split(".")[0]))' "$GPU_MACHINE_CUDA")
  in_fs /usr/bin/env TORCH_CUDA_ARCH_LIST="$arch" bash -c '
    set -euo pipefail
    step() { printf "[standin %s] %s\n" "$(date +%H:%M:%S)" "$*"; }
    die() { printf "error: %s\n" "$*" >&2; exit 1; }
    source /src/tools/mmcv_build.sh
    export_cuda_build_env "$1" "$2"
    build_mmcv_wheel python "/build/mmcv-$MMCV_VERSION" /build/dist /build/build.log cuda "${MAX_JOBS:-2}"
  ' standin "$tk" "$torch_nvidia"
  local wheel
  wheel=$(ls "$build"/dist/mmcv-"${MMCV_VERSION}"-cp312-*.whl)
  # The extension alone, loaded beside torch (mmcv itself would need mmengine): CUDA must be in.
  in_fs python - "/build/dist/$(basename "$wheel")" <<'PY'
import importlib.util
import sys
import tempfile
import zipfile

import torch

with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(sys.argv[1]) as wheel:
    so = next(n for n in wheel.namelist() if n.startswith('mmcv/_ext.cpython-312'))
    spec = importlib.util.spec_from_file_location('mmcv._ext', wheel.extract(so, tmp))
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    built = ext.get_compiling_cuda_version()
    assert built == torch.version.cuda, f'ops compiled with CUDA {built!r}, torch has {torch.version.cuda}'
    print(f'  {so}: ops compiled with CUDA {built}, for torch {torch.__version__}')
PY
  mkdir -p "$wheel_dir"
  cp "$wheel" "$wheel_dir/"
  step "mmcv: $(basename "$wheel") ($(stat -c %s "$wheel") bytes) in $wheel_dir"
}

case "${1:-}" in
  create) create ;;
  build-mmcv) create; build_mmcv ;;
  run)
    shift
    [ $# -gt 0 ] || die "run needs a command, e.g. run bash tools/gpu_check_on_device.sh --rehearse-on-cpu"
    create
    # this machine's CUDA toolkit too, where there is one, as the GPU machine has its nvcc
    if tk=$(toolkit 2>/dev/null); then
      bind "$tk" "$tk" ro
      TOOLKIT_BIN=$tk/bin
    fi
    in_fs bash -c 'cd /src && exec "$@"' standin "$@" ;;
  remove)
    # Never rm -rf the folder while something is mounted in it: /src is this checkout, /dev the
    # machine's devices.
    grep -F " $FS/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount --lazy "$m"; done
    ! grep -qF " $FS/" /proc/mounts || die "still mounted under $FS: $(grep -F " $FS/" /proc/mounts | cut -d' ' -f2)"
    rm -rf "$FS" && step "removed $FS" ;;
  *) die "usage: bash tools/gpu_machine_standin.sh create|build-mmcv|run CMD...|remove" ;;
esac
