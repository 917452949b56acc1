"""The CUDA build of mmcv that tools/setup/setup_env.sh caches (FORCE_CUDA=1 or a GPU) imports with
CUDA compiled in.

CI is CPU-only: this test runs only where that set-up has filled the wheel cache with a CUDA
wheel for the running torch and Python, and is skipped (saying why) everywhere else. It unpacks
the wheel into a temporary folder and imports it in a subprocess, so the CPU mmcv installed in
this environment is left alone.
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List

import pytest
import torch


def wheel_cache() -> Path:
    """The wheel folder of tools/setup/setup_env.sh (same defaults as the script)."""
    cache = os.environ.get('RAPIDNET_MM_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'rapidnet_mm')
    return Path(cache) / 'wheels'


def cached_cuda_wheels() -> List[Path]:
    """CUDA mmcv wheels the script built for this torch and this Python, newest first.

    The folder names are the script's cache key:
    ``mmcv-<ver>_torch-<torch>_cuda_py<XY>_<flags>_sm-<archs>_<patches>``.
    """
    py_tag = f'py{sys.version_info[0]}{sys.version_info[1]}'
    prefix = f'_torch-{torch.__version__}_cuda_{py_tag}_'
    wheels = [w for d in wheel_cache().glob('mmcv-*') if prefix in d.name
              for w in d.glob('mmcv-*.whl')]
    return sorted(wheels, key=lambda w: w.stat().st_mtime, reverse=True)


CHECK = """
import mmcv, mmcv.ops, torch
assert mmcv.__file__.startswith({root!r}), mmcv.__file__
print(torch.version.cuda)
print(mmcv.ops.get_compiling_cuda_version())
"""


@pytest.mark.skipif(
    not cached_cuda_wheels(),
    reason=f'no CUDA mmcv wheel for torch {torch.__version__} in {wheel_cache()} '
           '(FORCE_CUDA=1 bash tools/setup/setup_env.sh builds one)')
def test_cached_cuda_wheel_imports_with_cuda_compiled_in(tmp_path):
    wheel = cached_cuda_wheels()[0]
    root = tmp_path / 'site'
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root)
    env = dict(os.environ, PYTHONPATH=str(root), CUDA_VISIBLE_DEVICES='')
    result = subprocess.run([sys.executable, '-c', CHECK.format(root=str(root))], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    torch_cuda, compiled = result.stdout.splitlines()[-2:]
    assert torch_cuda == torch.version.cuda
    assert compiled == torch.version.cuda, f'{wheel.parent.name}: compiled with CUDA {compiled!r}'
