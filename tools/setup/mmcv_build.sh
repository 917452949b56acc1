# Sourced by tools/setup/setup_env.sh, not run: how mmcv 2.1.0 is built from source (the source
# archive's checksum, the compiler flags, the source patches, the wheel cache key), for CPU and CUDA
# builds alike. The caller defines die() (one "error: ..." line, exit 1) and step() (a progress
# line) before calling these.

MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
# Python's default flags without debug info: ~40% faster to build, same speed (a bare CFLAGS=-g0
# would silently build at -O0).
MMCV_CFLAGS="-DNDEBUG -fwrapv -O3 -Wall -g0"
# The C++ standard flag that replaces mmcv 2.1.0's hard-coded -std=c++14/c++17, or empty for mmcv's
# own flags, unpatched. The caller sets it with mmcv_cxx_std from the headers of the torch being
# built against: torch 2.1's need C++17 (no patch), torch 2.14's C++20.
MMCV_CXX_STD=""

mmcv_cxx_std() {
  # mmcv_cxx_std TORCH_INCLUDE: "-std=c++NN" when the ATen headers under TORCH_INCLUDE require a
  # standard newer than C++17 (ATen.h: "#error C++NN or later compatible compiler is required"),
  # else nothing.
  local header=$1/ATen/ATen.h std
  [ -f "$header" ] || die "no torch headers at $1 (ATen/ATen.h missing): is torch installed?"
  std=$(sed -n 's/.*C++\([0-9][0-9]\) or later compatible compiler is required.*/\1/p' "$header" \
    | head -n 1)
  [ -n "$std" ] || die "$header names no required C++ standard: cannot tell which flag mmcv needs"
  if [ "$std" -gt 17 ]; then echo "-std=c++$std"; fi
}

check_mmcv_archive() {
  # check_mmcv_archive FILE: stop unless FILE is the mmcv source archive we patch.
  echo "$MMCV_SHA256  $1" | sha256sum --check --quiet \
    || die "mmcv source archive checksum mismatch: $1 (expected mmcv ${MMCV_VERSION})"
}

download_mmcv_archive() {
  # download_mmcv_archive PY DIR: DIR/mmcv-<version>.tar.gz, downloaded unless there, checksum
  # checked. --no-build-isolation: pip reads the archive's metadata through setup.py, which imports
  # torch (PY's).
  local py=$1 dir=$2 archive=$2/mmcv-${MMCV_VERSION}.tar.gz
  if [ ! -f "$archive" ]; then
    "$py" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation -d "$dir" \
      "mmcv==${MMCV_VERSION}" 2> >(grep -v "^WARNING: Location" >&2)
  fi
  [ -f "$archive" ] || die "pip did not download $archive"
  check_mmcv_archive "$archive"
}

unpack_mmcv_source() {
  # unpack_mmcv_source ARCHIVE DIR DEVICE(cpu|cuda): DIR/mmcv-<version> freshly unpacked and
  # patched, keeping the build/ folder of an earlier, failed or interrupted, attempt there: ninja
  # then recompiles only what changed (patched sources, changed flags), most of an hour on 2 loaded
  # cores for a CUDA build.
  local archive=$1 dir=$2 device=$3 src=$2/mmcv-${MMCV_VERSION}
  mkdir -p "$dir"
  if [ -d "$src/build" ]; then
    step "    reusing the object files of the earlier attempt in $src/build"
    mv "$src/build" "$dir/.keep-build-$$"
    rm -rf "$src"
    tar -xzf "$archive" -C "$dir"
    mv "$dir/.keep-build-$$" "$src/build"
  else
    rm -rf "$src"
    tar -xzf "$archive" -C "$dir"
  fi
  patch_mmcv_sources "$src" "$device"
}

patch_mmcv_cuda_sources() {
  # patch_mmcv_cuda_sources SRC: narrow fixes to mmcv 2.1.0's CUDA sources for CUDA 13 / C++20;
  # each fails if its target text is gone. (None needed so far.)
  local src=$1
  [ -d "$src/mmcv/ops/csrc/pytorch/cuda" ] || die "no CUDA sources in $src"
}

patch_mmcv_sources() {
  # patch_mmcv_sources SRC DEVICE(cpu|cuda): every source patch a build needs, in place (the C++
  # standard only when MMCV_CXX_STD is set).
  local src=$1 device=$2
  if [ -n "$MMCV_CXX_STD" ]; then
    grep -q -- '-std=c++1[47]' "$src/setup.py" \
      || die "mmcv setup.py has no -std=c++14/17 flag to replace: the ${MMCV_CXX_STD} workaround no longer fits"
    sed -i "s/-std=c++1[47]/${MMCV_CXX_STD}/g" "$src/setup.py"
  fi
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

mmcv_wheel_dir() {
  # mmcv_wheel_dir CACHE TORCH_VERSION DEVICE(cpu|cuda) PY_TAG(py311) [ARCH_LIST]: the cache folder
  # of one build's wheel, keyed by everything that decides it: torch, the flags including
  # MMCV_CXX_STD (set it first), and for a CUDA build the architectures and CUDA source patches.
  local cache=$1 torch=$2 device=$3 py_tag=$4 arch_list=${5:-} flags dir
  flags=$(printf '%s %s' "$MMCV_CFLAGS" "$MMCV_CXX_STD" | sha256sum | cut -c1-8)
  dir=$cache/wheels/mmcv-${MMCV_VERSION}_torch-${torch}_${device}_${py_tag}_${flags}
  if [ "$device" = cuda ]; then
    [ -n "$arch_list" ] || die "mmcv_wheel_dir: a CUDA build needs its architecture list"
    dir=${dir}_sm-$(printf '%s' "$arch_list" | tr -c '0-9A-Za-z+' '-' | sed 's/-*$//')
    dir=${dir}_$(declare -f patch_mmcv_cuda_sources | sha256sum | cut -c1-8)
  fi
  echo "$dir"
}

cuda_release() {
  # cuda_release NVCC: "13.0" from `nvcc --version` ("Cuda compilation tools, release 13.0, V13.0.88").
  "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p'
}

toolkit_of() {
  # toolkit_of NVCC: the toolkit folder of an nvcc: bin/.. of the real file, or of the nvcc that a
  # wrapper script such as /usr/local/bin/nvcc ("exec /usr/local/cuda-13.0/bin/nvcc "$@"") runs.
  local nvcc real
  nvcc=$(readlink -f "$1")
  if [ ! -f "$(dirname "$nvcc")/nvcc.profile" ]; then
    real=$(sed -n 's/^exec \([^ ]*nvcc\) .*/\1/p' "$nvcc" | head -n 1)
    [ -z "$real" ] || nvcc=$(readlink -f "$real")
  fi
  (cd "$(dirname "$nvcc")/.." && pwd)
}

export_cuda_build_env() {
  # export_cuda_build_env TOOLKIT TORCH_NVIDIA: CUDA_HOME, PATH and CPATH for an mmcv CUDA build.
  # CUDA 13 keeps thrust, cub and nv/target under include/cccl, which comes first, as nvcc expects;
  # torch's CUDA headers include cuBLAS and cuSPARSE headers, which not every toolkit has but
  # torch's own CUDA wheels install (TORCH_NVIDIA: site-packages/nvidia/cuXX).
  local toolkit=$1 torch_nvidia=$2
  export CUDA_HOME=$toolkit PATH="$toolkit/bin:$PATH"
  export CPATH="$toolkit/include/cccl:$toolkit/include:$torch_nvidia/include${CPATH:+:$CPATH}"
}

check_cuda_arch_list() {
  # check_cuda_arch_list CUDA_VERSION ARCH_LIST: stop on an architecture that CUDA cannot compile.
  local cuda=$1 arch
  for arch in $(printf '%s' "$2" | tr ';,' '  '); do
    case "${cuda%%.*}:${arch%%+*}" in
      1[3-9]:[3-6].*|1[3-9]:7.[0-4])
        die "TORCH_CUDA_ARCH_LIST has ${arch}, but CUDA ${cuda} compiles nothing older than 7.5: drop it" ;;
    esac
  done
}

build_mmcv_wheel() {
  # build_mmcv_wheel PY SRC DIST LOG DEVICE(cpu|cuda) JOBS: `setup.py bdist_wheel` of the patched
  # source folder SRC into DIST, output in LOG, a progress line (the caller's step()) every
  # MMCV_PROGRESS_S seconds (default 30); on failure the end of the log and one error line.
  local py=$1 src=$2 dist=$3 log=$4 device=$5 jobs=$6 total pid started
  total=$(mmcv_units "$src" "$device")
  (
    cd "$src"
    MMCV_WITH_OPS=1 FORCE_CUDA=$([ "$device" = cuda ] && echo 1 || echo 0) MAX_JOBS=$jobs \
      CFLAGS="$MMCV_CFLAGS" "$py" setup.py bdist_wheel -d "$dist" >"$log" 2>&1
  ) &
  pid=$! started=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep "${MMCV_PROGRESS_S:-30}"
    step "    mmcv build: $(find "$src/build" -name '*.o' 2>/dev/null | wc -l)/${total} units compiled, $((SECONDS - started)) s elapsed"
  done
  wait "$pid" || { tail -n 30 "$log" >&2; die "the mmcv ${device} build failed; full log: $log"; }
  step "    mmcv built in $((SECONDS - started)) s"
}
