"""ONNX export checked with onnxruntime against the PyTorch model."""
import os.path as osp

import numpy as np
import pytest
from deploy_helpers import FILE_EXPORT_CASES, config_path, export_with_tool, load_tool

ort = pytest.importorskip('onnxruntime')

from rapidnet_mm.deploy import input_normalization, reference_outputs  # noqa: E402
from rapidnet_mm.deploy.export_module import random_image  # noqa: E402
from rapidnet_mm.deploy.onnx_export import run_onnxruntime  # noqa: E402

tool = load_tool('export_onnx')


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
    assert 'name the ONNX file *.onnx' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'x.onnx')
