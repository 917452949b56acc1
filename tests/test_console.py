"""A quiet console: the known third-party noise is filtered when rapidnet_mm is imported (and
nothing else), and a mistake in a model setting ends tools/train.py with one ``error:`` line
(its traceback behind --debug or RAPIDNET_MM_DEBUG=1)."""
import os
import subprocess
import sys

import pytest

from det_helpers import DEMO_CONFIG
from tool_helpers import ROOT

# Run in a fresh interpreter: pytest resets the warnings filters around every test.
NOISE = """
import logging, warnings
import rapidnet_mm
from mmengine.utils import is_installed
is_installed('mmdet')  # imports and reloads pkg_resources: setuptools' deprecation warning
coreml = logging.getLogger('coremltools')
coreml.warning("Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'")
coreml.warning('Torch version 9.9 has not been tested with coremltools.')
warnings.warn('an unrelated warning stays', UserWarning)
warnings.warn('pkg_resources is deprecated as an API, but as a DeprecationWarning',
              DeprecationWarning)
logging.getLogger('other').warning("Failed to load _MLModelProxy: in another logger")
"""


def test_known_noise_is_dropped_and_everything_else_kept():
    out = subprocess.run([sys.executable, '-W', 'always', '-c', NOISE], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert not any('pkg_resources is deprecated as an API. See' in line for line in lines)
    assert not any('coremltools.libcoremlpython' in line for line in lines)
    assert 'Torch version 9.9 has not been tested with coremltools.' in lines
    assert 'Failed to load _MLModelProxy: in another logger' in lines
    assert any('UserWarning: an unrelated warning stays' in line for line in lines)
    assert any('DeprecationWarning: pkg_resources is deprecated as an API, but' in line
               for line in lines)


BAD_ARCH_LINE = (
    "error: unknown RapidNet arch 'xl'; choose one of ['b', 'm', 's', 'ti'] or pass a dict "
    "with keys 'ir_blocks', 'mldc_blocks', 'channels' and 'head_width' (in model.backbone, set "
    'by --cfg-options model.backbone.arch=xl); for the traceback rerun with --debug or '
    'RAPIDNET_MM_DEBUG=1')


def train_with_bad_arch(tmp_path, *extra, env=None):
    data = tmp_path / 'data'
    data.mkdir(exist_ok=True)  # the model is built (and fails) before any data is read
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), DEMO_CONFIG, '--work-dir',
         str(tmp_path / 'wd'), *extra, '--cfg-options', 'model.backbone.arch=xl',
         f'train_dataloader.dataset.data_root={data}', f'val_dataloader.dataset.data_root={data}'],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env=dict(os.environ, **(env or {})))


@pytest.mark.slow
def test_bad_model_setting_ends_in_one_error_line(tmp_path):
    out = train_with_bad_arch(tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == BAD_ARCH_LINE
    assert 'Traceback' not in out.stdout + out.stderr


@pytest.mark.slow
def test_debug_flag_keeps_the_traceback(tmp_path):
    out = train_with_bad_arch(tmp_path, '--debug')
    assert out.returncode == 1  # the uncaught ValueError's traceback: Python's status
    lines = out.stderr.splitlines()
    assert 'Traceback (most recent call last):' in lines
    assert 'mmengine/registry/build_functions.py' in out.stderr
    assert lines[-1] == ("ValueError: unknown RapidNet arch 'xl'; choose one of ['b', 'm', 's', "
                         "'ti'] or pass a dict with keys 'ir_blocks', 'mldc_blocks', 'channels' "
                         "and 'head_width'")


def bad_arch():
    from rapidnet_mm.models.arch import resolve_arch
    resolve_arch('xl')


def wrapped_bad_arch():
    """As mmcv 1.x's build_from_cfg re-raised: the class name prepended."""
    try:
        bad_arch()
    except ValueError as err:
        raise ValueError(f'RapidNet: {err}')


@pytest.mark.parametrize('work', [bad_arch, wrapped_bad_arch])
def test_only_our_own_errors_become_one_line(work, monkeypatch):
    from mmengine.config import Config
    from rapidnet_mm.config import ConfigError
    from rapidnet_mm.config_errors import run_reporting_config_errors
    monkeypatch.delenv('RAPIDNET_MM_DEBUG', raising=False)
    with pytest.raises(ConfigError) as error:
        run_reporting_config_errors(work, Config({}), None)
    assert f'error: {error.value}' == BAD_ARCH_LINE.replace(
        ' (in model.backbone, set by --cfg-options model.backbone.arch=xl)', '')
    with pytest.raises(ValueError, match='invalid literal for int'):  # not raised by us
        run_reporting_config_errors(lambda: int('x'), Config({}), None)
    monkeypatch.setenv('RAPIDNET_MM_DEBUG', '1')
    with pytest.raises(ValueError, match=r"^(RapidNet: )?unknown RapidNet arch 'xl'"):
        run_reporting_config_errors(work, Config({}), None)
