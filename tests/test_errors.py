"""One error convention: every expected error of the package derives from ``RapidNetError`` (none
is a ``SystemExit``), and every tool under tools/ turns it into one ``error:`` line and exit
status 2 at one place (``rapidnet_mm.cli.run_tool``), an unwritable output included, before
anything is built."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

from rapidnet_mm.analysis.gpu_check import CheckFailed, NoCudaError
from rapidnet_mm.analysis.results import CollectError
from rapidnet_mm.checkpoints import CheckpointDownloadError, CheckpointLayoutError
from rapidnet_mm.cli import check_output_path, run_tool
from rapidnet_mm.config import ConfigError, load_model_config
from rapidnet_mm.demo import DemoFailed
from rapidnet_mm.deploy.coreml_benchmark import NeedsMacOS
from rapidnet_mm.deploy.export_module import ExportError
from rapidnet_mm.deploy.runtime import RuntimeSetupError
from rapidnet_mm.errors import (DEBUG_ENV, InputError, MissingFileError, OutputError,
                                RapidNetError)
from rapidnet_mm.inference import InferenceError
from rapidnet_mm.models.distillation import MissingTeacherError
from tool_helpers import ROOT, load_tool

pytestmark = pytest.mark.core

CLS_CONFIG = 'configs/cls/rapidnet_ti_in1k.py'
# Each expected error class and the second base its callers catch (None: the base alone).
EXPECTED = [(ConfigError, None), (NoCudaError, None), (ExportError, ValueError),
            (RuntimeSetupError, ValueError), (InferenceError, ValueError),
            (CheckpointLayoutError, ValueError), (CheckpointDownloadError, ValueError),
            (CollectError, ValueError), (InputError, ValueError),
            (MissingFileError, FileNotFoundError), (OutputError, OSError),
            (MissingTeacherError, RuntimeError), (NeedsMacOS, RuntimeError)]


@pytest.mark.parametrize('cls,second', EXPECTED, ids=[c.__name__ for c, _ in EXPECTED])
def test_the_base_class_catches_every_expected_error(cls, second):
    for catch in (RapidNetError, Exception) + ((second, ) if second else ()):
        with pytest.raises(catch) as caught:
            raise cls('a message naming the fix')
        assert type(caught.value) is cls and str(caught.value) == 'a message naming the fix'
    assert not issubclass(cls, SystemExit)


def test_results_and_internal_failures_are_not_expected_errors():
    """A demo that did not learn and a GPU check that failed ran to the end: exit status 1."""
    assert not issubclass(DemoFailed, RapidNetError)
    assert not issubclass(CheckFailed, RapidNetError)


def test_config_error_is_an_ordinary_exception(tmp_path):
    missing = str(tmp_path / 'missing.py')
    try:
        load_model_config(missing)
    except Exception as err:  # noqa: BLE001  (what a library caller writes)
        caught = err
    assert type(caught) is ConfigError and str(caught) == f'config file not found: {missing}'


def test_run_tool_status_line_and_debug(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_tool(lambda: None) == 0
    assert run_tool(lambda: 1) == 1  # a tool's own status (a failed check) passes through

    def refused():
        raise ExportError('--out x.onnx: name it *.onnx')
    assert run_tool(refused) == 2
    assert capsys.readouterr().err == 'error: --out x.onnx: name it *.onnx\n'
    with pytest.raises(ExportError):  # --debug keeps the traceback
        run_tool(refused, debug=True)
    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(ExportError):
        run_tool(refused)
    monkeypatch.delenv(DEBUG_ENV)
    with pytest.raises(ZeroDivisionError):  # not an expected error: its traceback stays
        run_tool(lambda: 1 / 0)


def bad_input_cases(tmp: str) -> dict:
    """Tool -> (argv, fragment of its one error line): a cheap bad input for every tool; ``tmp``
    holds a file ``a_file``."""
    missing, a_file = osp.join(tmp, 'missing.py'), osp.join(tmp, 'a_file')
    work = ['--work-dir', osp.join(tmp, 'w')]
    return {
        'train': ([missing] + work, 'config file not found'),
        'test': ([missing, 'x.pth'] + work, 'config file not found'),
        'infer': ([CLS_CONFIG, 'x.pth', osp.join(tmp, 'missing.jpg')], 'image not found'),
        'demo': (['--iters', '0'] + work, '--iters must be at least 1'),
        'deployment/export': ([missing, '--format', 'onnx', '--out', osp.join(tmp, 'x.onnx')],
                              'config file not found'),
        'deployment/reparameterize': ([missing, 'x.pth', osp.join(tmp, 'x.pth')],
                                      'config file not found'),
        'model_converters/convert_official': ([osp.join(tmp, 'x.pth'), osp.join(tmp, 'y.pth')],
                                              'checkpoint not found'),
        'analysis_tools/get_flops': ([missing], 'config file not found'),
        'analysis_tools/benchmark': ([missing, '--peers', 'none'], 'config file not found'),
        'analysis_tools/collect_results': ([osp.join(tmp, 'nowhere')], 'nowhere'),
        'analysis_tools/profile_int8': ([missing], 'config file not found'),
        'analysis_tools/gpu_check': (['--out', osp.join(tmp, 'o'), '--work-dir', a_file],
                                     f'--work-dir {a_file} is a file; name a folder'),
        'misc/digits_int8': (work + ['--out', osp.join(a_file, 't.md')],
                             'is a file, not a folder'),
        'misc/make_digits': (['--out', osp.join(tmp, 'd'), '--size', '4'], 'size 4'),
        'misc/make_tiny_coco': (['--out', osp.join(tmp, 'd'), '--image-size', '32'],
                                'image_size must be at least'),
        'misc/make_tiny_ade20k': (['--out', osp.join(tmp, 'd'), '--num-train', '0'],
                                  'need at least one image per split'),
    }


def unwritable_output_cases(under: str) -> dict:
    """Tool -> (argv, the option, the path given): an output in the folder ``under``, which
    cannot be created, for every tool that writes one."""
    image = osp.join(ROOT, 'docs', 'demo_val_grid.png')
    cases = {
        'test': ([CLS_CONFIG, 'x.pth'], '--out', 'r.pkl'),
        'infer': ([CLS_CONFIG, 'x.pth', image], '--out-dir', ''),
        'demo': ([], '--work-dir', ''),
        'deployment/export': ([CLS_CONFIG, '--format', 'onnx'], '--out', 'x.onnx'),
        'deployment/reparameterize': ([CLS_CONFIG, 'x.pth'], 'OUT', 'x.pth'),
        'model_converters/convert_official': (['x.pth'], 'DST', 'y.pth'),
        'analysis_tools/benchmark': (['--peers', 'none'], '--out', 't.md'),
        'analysis_tools/collect_results': ([ROOT], '--out', 't.md'),
        'analysis_tools/profile_int8': ([], '--out', 't.md'),
        'analysis_tools/gpu_check': ([], '--out', ''),
        'misc/digits_int8': (['--work-dir', osp.join(osp.dirname(osp.dirname(under)), 'w')],
                             '--out', 't.md'),
        'misc/make_digits': ([], '--out', ''),
        'misc/make_tiny_coco': ([], '--out', ''),
        'misc/make_tiny_ade20k': ([], '--out', ''),
    }
    result = {}
    for name, (argv, option, file) in cases.items():
        path = osp.join(under, file) if file else under
        result[name] = (argv + ([path] if option.isupper() else [option, path]), option, path)
    return result


# Tools with no input or output a user names: only argparse refuses their options.
NO_EXPECTED_ERRORS = {'misc/show_variants'}
# Tools that write nothing but the console.
NO_OUTPUT = {'train', 'analysis_tools/get_flops'}  # train: the Runner's work dir


def test_every_tool_is_covered(tmp_path):
    tools = {osp.splitext(osp.relpath(p, osp.join(ROOT, 'tools')))[0]
             for p in glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)}
    assert set(bad_input_cases(str(tmp_path))) == tools - NO_EXPECTED_ERRORS
    assert set(unwritable_output_cases(str(tmp_path))) == tools - NO_EXPECTED_ERRORS - NO_OUTPUT


def run_in_process(name, argv, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    status = load_tool(name).main()
    return status, capsys.readouterr()


@pytest.mark.parametrize('name', sorted(bad_input_cases('/tmp')))
def test_every_tool_ends_a_bad_input_in_one_line_with_status_2(name, tmp_path, monkeypatch,
                                                              capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    (tmp_path / 'a_file').write_text('not a folder')
    argv, fragment = bad_input_cases(str(tmp_path))[name]
    status, out = run_in_process(name, argv, monkeypatch, capsys)
    lines = out.err.strip().splitlines()
    assert status == 2 and len(lines) == 1, (name, out.err)
    assert lines[0].startswith('error: ') and fragment in lines[0], (name, lines)


@pytest.mark.parametrize('name', sorted(unwritable_output_cases('/tmp')))
def test_every_tool_refuses_an_unwritable_output_before_building(name, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    blocked = tmp_path / 'a_file'
    blocked.write_text('not a folder')
    argv, option, path = unwritable_output_cases(str(blocked / 'sub'))[name]
    status, out = run_in_process(name, argv, monkeypatch, capsys)
    assert status == 2, (name, out.err)
    assert out.err.splitlines() == [f'error: {option} {path}: {blocked} is a file, not a folder']
    assert out.out == '', out.out  # refused before anything was built, loaded or written
    assert os.listdir(tmp_path) == ['a_file']  # nothing left


def test_output_check_leaves_nothing_behind(tmp_path, monkeypatch):
    out = tmp_path / 'a' / 'b' / 'x.onnx'
    check_output_path(str(out), '--out')  # writable: checked, and the folders removed again
    assert os.listdir(tmp_path) == []

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr('tempfile.mkstemp', refuse)
    with pytest.raises(OutputError) as err:
        check_output_path(str(out), '--out')
    assert str(err.value) == (f'--out {out}: cannot write into {out.parent} (Permission '
                              'denied); name a folder you can write to')
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match=f'^--out-dir {tmp_path / "f"} is a file; name a folder'):
        (tmp_path / 'f').write_text('')
        check_output_path(str(tmp_path / 'f'), '--out-dir', folder=True)


@pytest.mark.skipif(not osp.isdir('/proc'), reason='needs /proc, where no folder can be made')
def test_export_refuses_an_out_in_a_folder_that_cannot_be_made():
    """The command a user typed: one line, status 2, before the model is built."""
    result = subprocess.run(
        [sys.executable, 'tools/deployment/export.py', CLS_CONFIG, '--format', 'onnx', '--out',
         '/proc/none/x.onnx'], capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={k: v for k, v in os.environ.items() if k != DEBUG_ENV})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        'error: --out /proc/none/x.onnx: cannot write into /proc/none (No such file or '
        'directory); name a folder you can write to']
    assert result.stdout == ''


def test_shared_options_are_spelled_one_way(capsys):
    flops = load_tool('analysis_tools/get_flops')
    for argv, size in ((['--input-size', '64', '96'], (64, 96)), (['--input-size', '64'], (64, 64)),
                       (['--shape', '64', '96'], (64, 96)), ([], (224, 224))):
        assert flops.parse_args([CLS_CONFIG] + argv).input_size == size, argv
    with pytest.raises(SystemExit) as done:
        flops.parse_args(['--help'])
    assert done.value.code == 0
    help_text = ' '.join(capsys.readouterr().out.split())
    assert 'deprecated: the old spelling of --input-size' in help_text
    with pytest.raises(SystemExit) as done:  # argparse's own refusal: status 2, usage, one error
        flops.parse_args([CLS_CONFIG, '--input-size', '1', '2', '3'])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        'error: --input-size takes H W (or one value for a square), got 1 2 3')
    benchmark = load_tool('analysis_tools/benchmark')
    assert benchmark.parse_args(['--device', 'cuda:1']).device == 'cuda:1'
    with pytest.raises(SystemExit) as done:
        benchmark.parse_args(['--device', 'gpu'])
    assert done.value.code == 2
    assert "give cpu, cuda or cuda:<index>" in capsys.readouterr().err
    infer = load_tool('infer')
    args = infer.parse_args([CLS_CONFIG, 'x.pth', 'a.jpg', '--weights', 'raw', '--cfg-options',
                             'model.backbone.arch=s'])
    assert (args.weights, args.cfg_options, args.device) == ('raw', {'model.backbone.arch': 's'},
                                                             None)
