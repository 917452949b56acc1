"""The shell functions every mmcv build shares (tools/mmcv_build.sh) and the fail-fast checks of
the GPU machine's scripts (tools/prepare_gpu_check.sh, tools/gpu_check_on_device.sh), run on CPU.

Nothing here compiles or downloads: the scripts must stop, with one line naming the fix, before
they would.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BUILD_SH = ROOT / 'tools' / 'mmcv_build.sh'


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


def test_built_for_file_round_trip(tmp_path):
    result = bash(f'built_for_line 2.11.0+cu130 "9.0;10.0" >{tmp_path}/b.txt; cat {tmp_path}/b.txt; '
                  f'built_for_torch {tmp_path}/b.txt; echo "[$(built_for_torch {tmp_path}/no.txt)]"')
    assert result.stdout.splitlines() == ['torch=2.11.0+cu130 arch=9.0;10.0', '2.11.0+cu130', '[]']


def test_prepare_stops_before_downloading_without_a_prebuilt_wheel(tmp_path):
    result = subprocess.run(
        ['bash', str(ROOT / 'tools' / 'prepare_gpu_check.sh')], capture_output=True, text=True,
        env=dict(os.environ, RAPIDNET_MM_CACHE=str(tmp_path), PYTHON=sys.executable), timeout=60)
    assert result.returncode == 1
    assert 'no prebuilt mmcv wheel for the GPU machine' in result.stderr
    assert 'gpu_machine_standin.sh build-mmcv' in result.stderr
    assert '--build-on-device' in result.stderr
    assert '2/3' not in result.stdout  # nothing downloaded
    bad = subprocess.run(['bash', str(ROOT / 'tools' / 'prepare_gpu_check.sh'), '--fast'],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHON=sys.executable))
    assert bad.returncode == 1 and "unknown option '--fast'" in bad.stderr


def on_device(carry: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ['bash', str(ROOT / 'tools' / 'gpu_check_on_device.sh'), *args], capture_output=True,
        text=True, timeout=120,
        env=dict(os.environ, GPU_CARRY=str(carry), OUT=str(out), PYTHON=sys.executable,
                 CUDA_VISIBLE_DEVICES=''))


def test_on_device_script_refuses_a_wheel_built_for_another_torch(tmp_path):
    carry = tmp_path / 'carry'
    (carry / 'wheels').mkdir(parents=True)
    py_tag = f'cp{sys.version_info[0]}{sys.version_info[1]}'
    (carry / f'mmcv-2.1.0-{py_tag}-{py_tag}-linux_x86_64.whl').write_bytes(b'not installed')
    (carry / 'mmcv-built-for.txt').write_text('torch=2.11.0+cu130 arch=9.0\n')
    if torch.__version__ == '2.11.0+cu130':
        pytest.skip('this torch is the one the wheel is said to be built for')
    result = on_device(carry, tmp_path / 'out', '--rehearse-on-cpu')
    assert result.returncode == 1
    assert (f'was built for torch 2.11.0+cu130, this machine has torch {torch.__version__}'
            in result.stderr)
    assert not (tmp_path / 'out').exists()  # stopped before installing anything

    (carry / 'mmcv-built-for.txt').unlink()
    result = on_device(carry, tmp_path / 'out', '--rehearse-on-cpu')
    assert result.returncode == 1 and 'no mmcv-built-for.txt beside it' in result.stderr


def test_on_device_script_needs_a_gpu_unless_rehearsing(tmp_path):
    carry = tmp_path / 'carry'
    (carry / 'wheels').mkdir(parents=True)
    result = on_device(carry, tmp_path / 'out')
    assert result.returncode == 1
    assert 'sees no GPU here' in result.stderr and '--rehearse-on-cpu' in result.stderr
    # rehearsing passes the GPU check and stops at the next missing piece: mmcv
    result = on_device(carry, tmp_path / 'out', '--rehearse-on-cpu')
    assert 'no GPU: rehearsing on CPU' in result.stdout
    assert result.returncode == 1 and 'neither a built mmcv wheel' in result.stderr
