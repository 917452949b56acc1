"""ONNX export checked with onnxruntime against the PyTorch model."""
import os.path as osp

import numpy as np
import pytest
from deploy_helpers import FILE_EXPORT_CASES, ExportTool, config_path, export_with_tool

ort = pytest.importorskip('onnxruntime')

from rapidnet_mm.deploy import input_normalization, reference_outputs  # noqa: E402
from rapidnet_mm.deploy.comparison import random_image  # noqa: E402
from rapidnet_mm.deploy.onnx_export import run_onnxruntime  # noqa: E402

pytestmark = pytest.mark.core

tool = ExportTool('onnx')


@pytest.mark.slow
@pytest.mark.parametrize('config,task,extra,names', FILE_EXPORT_CASES)
def test_onnxruntime_equals_pytorch(tmp_path, capsys, config, task, extra, names):
    cfg, model, out = export_with_tool(tool, tmp_path, config, task, extra, 'model.onnx')
    assert 'onnxruntime vs PyTorch max |diff|' in capsys.readouterr().out

    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['image']
    assert [o.name for o in session.get_outputs()] == names
    size = tuple(int(v) for v in extra[1:3])
    image = random_image(size, seed=5)
    ref = reference_outputs(model.eval(), task, image, input_normalization(cfg))
    got = run_onnxruntime(out, image.numpy())
    for r, g in zip(ref, got):
        diff = np.abs(r.numpy() - g).max()
        print(f'max abs diff {diff:.3g} (max |ref| {r.abs().max():.3g})')
        assert g.shape == tuple(r.shape) and diff <= 1e-5 * r.abs().max().item()


def test_bad_input_exits_with_one_line(tmp_path, capsys):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    assert tool.main([cfg_path, '--out', str(tmp_path / 'x.onnx'), '--input-size', '100']) == 2
    err = capsys.readouterr().err.strip()
    assert 'input size 100x100 cannot be taken' in err and '\n' not in err
    assert tool.main([cfg_path, '--out', str(tmp_path / 'x.pb')]) == 2
    assert '--format onnx writes a ONNX file; name it *.onnx' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'x.onnx')


@pytest.mark.parametrize('option,owner', [(['--compress', 'int8'], 'coreml'),
                                          (['--precision', 'fp32'], 'coreml'),
                                          (['--benchmark', '5'], 'coreml')])
def test_options_of_another_format_are_refused(tmp_path, capsys, option, owner):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    assert tool.main([cfg_path, '--out', str(tmp_path / 'x.onnx')] + option) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f'error: {option[0]} is an option of --format {owner}, not of --format onnx: '
                   'drop it')
    assert list(tmp_path.iterdir()) == []


def test_opset_is_refused_for_core_ml(tmp_path, capsys):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    argv = [cfg_path, '--out', str(tmp_path / 'x.mlpackage'), '--opset', '13']
    assert ExportTool('coreml').main(argv) == 2
    assert capsys.readouterr().err.strip() == ('error: --opset is an option of --format onnx, '
                                               'not of --format coreml: drop it')
