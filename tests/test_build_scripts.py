"""The shell functions of the mmcv build (tools/setup/mmcv_build.sh): the wheel cache key, the
CUDA architecture check and the toolkit look-up, run on CPU. Nothing here compiles or downloads."""
import os
import subprocess
from pathlib import Path

import pytest

from tool_helpers import ROOT

BUILD_SH = Path(ROOT) / 'tools' / 'setup' / 'mmcv_build.sh'


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


def torch_headers(root: Path, text: str) -> Path:
    (root / 'ATen').mkdir(parents=True)
    (root / 'ATen' / 'ATen.h').write_text(f'#pragma once\n{text}\n')
    return root


def test_cxx_standard_is_patched_only_where_torchs_headers_need_it(tmp_path):
    # torch 2.1's and torch 2.14's ATen.h say, in these words, what they need
    cxx17 = torch_headers(tmp_path / '2.1', '#error C++17 or later compatible compiler is '
                          'required to use ATen.')
    cxx20 = torch_headers(tmp_path / '2.14', '#error C++20 or later compatible compiler is '
                          'required to use ATen.')
    assert bash(f'mmcv_cxx_std {cxx17}').stdout == ''
    assert bash(f'mmcv_cxx_std {cxx20}').stdout.strip() == '-std=c++20'
    silent = torch_headers(tmp_path / 'other', '#include <c10/core/Device.h>')
    assert 'names no required C++ standard' in bash(f'mmcv_cxx_std {silent}').stderr
    assert 'is torch installed' in bash(f'mmcv_cxx_std {tmp_path / "none"}').stderr

    setup_py = "extra_compile_args = {'cxx': ['-std=c++14']}\nflags = ['-std=c++17']\n"
    for std, expected in (('', setup_py), ('-std=c++20', setup_py.replace('c++14', 'c++20')
                                           .replace('c++17', 'c++20'))):
        src = tmp_path / f'src{std}'
        src.mkdir()
        (src / 'setup.py').write_text(setup_py)
        result = bash(f'MMCV_CXX_STD="{std}"; patch_mmcv_sources {src} cpu')
        assert result.returncode == 0, result.stderr
        assert (src / 'setup.py').read_text() == expected


def test_wheel_keys_of_the_two_stacks():
    main = bash('MMCV_CXX_STD=-std=c++20; mmcv_wheel_dir /c 2.14.1+cu130 cpu py311').stdout.strip()
    # the key the main stack's wheel caches already hold: changing it rebuilds mmcv everywhere
    assert main == '/c/wheels/mmcv-2.1.0_torch-2.14.1+cu130_cpu_py311_b2db95bb'
    torch21 = bash('mmcv_wheel_dir /c 2.1.2+cu121 cpu py311').stdout.strip()
    assert torch21.startswith('/c/wheels/mmcv-2.1.0_torch-2.1.2+cu121_cpu_py311_')
    # mmcv's own flags and the patched ones never share a key, even for the same torch
    unpatched = bash('mmcv_wheel_dir /c 2.14.1+cu130 cpu py311').stdout.strip()
    assert unpatched != main and unpatched.rsplit('_', 1)[0] == main.rsplit('_', 1)[0]


@pytest.mark.parametrize('args,error', [
    (['--stack', 'torch2.0'], "error: unknown stack 'torch2.0': use --stack main or --stack "
     'torch2.1'),
    (['--stack'], 'error: --stack needs a value: main or torch2.1'),
    (['--venv', 'x'], "error: unknown argument '--venv': use --stack main or --stack torch2.1"),
])
def test_setup_env_refuses_bad_arguments_before_doing_anything(tmp_path, args, error):
    result = subprocess.run(['bash', str(Path(ROOT) / 'tools' / 'setup' / 'setup_env.sh'), *args],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, RAPIDNET_MM_VENV=str(tmp_path / 'venv'),
                                     RAPIDNET_MM_CACHE=str(tmp_path / 'cache')))
    assert (result.returncode, result.stderr.strip()) == (2, error)
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'cache').exists()
