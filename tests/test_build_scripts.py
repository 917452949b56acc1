"""The shell functions of the mmcv build (tools/setup/mmcv_build.sh): the wheel cache key, the
CUDA architecture check and the toolkit look-up, run on CPU. Nothing here compiles or downloads."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_SH = ROOT / 'tools' / 'setup' / 'mmcv_build.sh'


def bash(script: str, env: dict = None) -> subprocess.CompletedProcess:
    """Runs ``script`` in bash after sourcing mmcv_build.sh, with the scripts' die()."""
    prelude = (f'set -euo pipefail\ndie() {{ printf "error: %s\\n" "$*" >&2; exit 1; }}\n'
               f'source {BUILD_SH}\n')
    return subprocess.run(['bash', '-c', prelude + script], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=60)


def test_wheel_dir_keys_cuda_builds_by_architectures_and_patches():
    cpu = bash('mmcv_wheel_dir /c 2.14.1+cu130 cpu py311').stdout.strip()
    sm90 = bash('mmcv_wheel_dir /c 2.14.1+cu130 cuda py311 9.0').stdout.strip()
    many = bash('mmcv_wheel_dir /c 2.14.1+cu130 cuda py311 "8.0;9.0"').stdout.strip()
    # a changed CUDA source patch changes the key, so that no stale wheel is reused
    patched = bash('patch_mmcv_cuda_sources() { sed -i s/a/b/ "$1/x.cu"; }\n'
                   'mmcv_wheel_dir /c 2.14.1+cu130 cuda py311 9.0').stdout.strip()
    assert cpu.startswith('/c/wheels/mmcv-2.1.0_torch-2.14.1+cu130_cpu_py311_')
    assert sm90.startswith(cpu.replace('_cpu_', '_cuda_') + '_sm-9-0_')
    assert many.startswith(cpu.replace('_cpu_', '_cuda_') + '_sm-8-0-9-0_')
    assert patched != sm90 and patched.rsplit('_', 1)[0] == sm90.rsplit('_', 1)[0]
    # the build flags are in every key
    other_flags = bash('MMCV_CFLAGS=-O2; mmcv_wheel_dir /c 2.14.1+cu130 cpu py311').stdout.strip()
    assert other_flags != cpu
    missing_arch = bash('mmcv_wheel_dir /c 2.14.1+cu130 cuda py311')
    assert missing_arch.returncode != 0
    assert 'architecture list' in missing_arch.stderr


@pytest.mark.parametrize('cuda,archs,error', [
    ('13.0', '7.5;8.0;8.6;8.9;9.0;10.0;12.0', None),
    ('13.0', '9.0+PTX', None),
    ('13.0', '7.0;9.0', 'has 7.0, but CUDA 13.0 compiles nothing older than 7.5'),
    ('13.0', '6.1', 'has 6.1'),
    ('12.8', '7.0', None),
])
def test_cuda_arch_list_check(cuda, archs, error):
    result = bash(f'check_cuda_arch_list {cuda} "{archs}"')
    if error is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1 and error in result.stderr


def test_toolkit_and_release_of_an_nvcc_behind_a_wrapper(tmp_path):
    toolkit = tmp_path / 'cuda-13.0'
    (toolkit / 'bin').mkdir(parents=True)
    (toolkit / 'bin' / 'nvcc.profile').write_text('')
    real = toolkit / 'bin' / 'nvcc'
    real.write_text('#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')
    wrapper = tmp_path / 'bin' / 'nvcc'
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    for path in (real, wrapper):
        path.chmod(0o755)
    result = bash(f'toolkit_of {wrapper}; toolkit_of {real}; cuda_release {wrapper}')
    assert result.stdout.split() == [str(toolkit), str(toolkit), '13.0']


def test_cuda_build_env_puts_cccl_first():
    result = bash('CPATH=/old; export_cuda_build_env /tk /venv/nvidia/cu13; '
                  'echo "$CUDA_HOME $CPATH"; echo "${PATH%%:*}"')
    assert result.stdout.split('\n')[:2] == [
        '/tk /tk/include/cccl:/tk/include:/venv/nvidia/cu13/include:/old', '/tk/bin']
