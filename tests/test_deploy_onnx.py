"""ONNX export checked with onnxruntime against the PyTorch model."""
import os.path as osp

import numpy as np
import pytest
from deploy_helpers import config_path, load_tool, perturb, save_checkpoint

ort = pytest.importorskip('onnxruntime')

from rapidnet_mm.deploy import (build_model, input_normalization,  # noqa: E402
                                load_model_config, reference_outputs)
from rapidnet_mm.deploy.export_module import random_image  # noqa: E402
from rapidnet_mm.deploy.onnx_export import run_onnxruntime  # noqa: E402

tool = load_tool('export_onnx')


@pytest.mark.slow
@pytest.mark.parametrize('config,task,extra,names', [
    (('cls', 'rapidnet_ti_in1k.py'), 'classifier', ['--input-size', '96', '96'], ['logits']),
    (('det', 'maskrcnn_rapidnet_s_coco.py'), 'backbone',
     ['--input-size', '64', '96', '--dilated-as-dense'],
     ['feat_s4', 'feat_s8', 'feat_s16', 'feat_s32']),
])
def test_onnxruntime_equals_pytorch(tmp_path, capsys, config, task, extra, names):
    cfg_path = config_path(*config)
    cfg = load_model_config(cfg_path)
    model = perturb(build_model(cfg))
    ckpt = save_checkpoint(model, tmp_path / 'w.pth')
    out = str(tmp_path / 'model.onnx')
    assert tool.main([cfg_path, '--checkpoint', ckpt, '--task', task, '--out', out] + extra) == 0
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
