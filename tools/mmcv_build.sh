# Sourced, not run: what every build of mmcv 2.1.0 from source shares (the source archive's
# checksum, the compiler flags, the source patches), so that tools/setup_env.sh (this machine,
# CPU or CUDA) and tools/gpu_check_on_device.sh (the GPU machine, docs/gpu.md) patch and build
# alike. Each caller defines die() (one "error: ..." line, exit 1) before calling these.

MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
# Python's default flags without debug info: ~40% faster to build, same speed (a bare CFLAGS=-g0
# would silently build at -O0).
MMCV_CFLAGS="-DNDEBUG -fwrapv -O3 -Wall -g0"
# torch >= 2.14's ATen headers require C++20; mmcv 2.1.0's setup.py hard-codes c++14/c++17.
MMCV_CXX_STD="-std=c++20"

check_mmcv_archive() {
  # check_mmcv_archive FILE: stop unless FILE is the mmcv source archive we patch.
  echo "$MMCV_SHA256  $1" | sha256sum --check --quiet \
    || die "mmcv source archive checksum mismatch: $1 (expected mmcv ${MMCV_VERSION})"
}

patch_mmcv_cuda_sources() {
  # patch_mmcv_cuda_sources SRC: narrow fixes to mmcv 2.1.0's CUDA sources for CUDA 13 / C++20;
  # each fails if its target text is gone. (None needed so far.)
  local src=$1
  [ -d "$src/mmcv/ops/csrc/pytorch/cuda" ] || die "no CUDA sources in $src"
}

patch_mmcv_sources() {
  # patch_mmcv_sources SRC DEVICE(cpu|cuda): every source patch a build needs, in place.
  local src=$1 device=$2
  grep -q -- '-std=c++1[47]' "$src/setup.py" \
    || die "mmcv setup.py has no -std=c++14/17 flag to replace: the C++20 workaround no longer fits"
  sed -i "s/-std=c++1[47]/${MMCV_CXX_STD}/g" "$src/setup.py"
  if [ "$device" = cuda ]; then
    patch_mmcv_cuda_sources "$src"
  fi
}

mmcv_units() {
  # mmcv_units SRC DEVICE: how many compile units the build has (for progress lines).
  local src=$1 device=$2 n
  n=$(find "$src/mmcv/ops/csrc/pytorch" -maxdepth 2 -name '*.cpp' \
    -not -path '*/cuda/*' -not -path '*/npu/*' -not -path '*/mlu/*' -not -path '*/mps/*' | wc -l)
  if [ "$device" = cuda ]; then
    n=$((n + $(find "$src/mmcv/ops/csrc/pytorch/cuda" -maxdepth 1 \( -name '*.cu' -o -name '*.cpp' \) | wc -l)))
  fi
  echo "$n"
}
