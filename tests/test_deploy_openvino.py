"""OpenVINO IR export (tools/deployment/export.py --format openvino) checked on the CPU against the PyTorch model."""
import os.path as osp
import sys

import numpy as np
import pytest
from deploy_helpers import FILE_EXPORT_CASES, ExportTool, config_path, export_with_tool

ov = pytest.importorskip('openvino')

from rapidnet_mm.deploy import input_normalization, reference_outputs  # noqa: E402
from rapidnet_mm.deploy import openvino_export  # noqa: E402
from rapidnet_mm.deploy.comparison import random_image  # noqa: E402

tool = ExportTool('openvino')


@pytest.mark.slow
@pytest.mark.parametrize('config,task,extra,names', FILE_EXPORT_CASES)
def test_openvino_ir_equals_pytorch(tmp_path, capsys, config, task, extra, names):
    cfg, model, xml = export_with_tool(tool, tmp_path, config, task, extra, 'm.xml')
    assert 'OpenVINO (CPU, f32) vs PyTorch max |diff|' in capsys.readouterr().out
    assert osp.getsize(str(tmp_path / 'm.bin')) > 4 * 1e5  # float32 weights, not fp16

    ir = ov.Core().read_model(xml)
    size = tuple(int(v) for v in extra[1:3])
    assert [i.get_any_name() for i in ir.inputs] == ['image']
    assert list(ir.inputs[0].get_shape()) == [1, 3, *size]
    assert [o.get_any_name() for o in ir.outputs] == names
    meta = openvino_export.read_metadata(xml)
    assert (meta['task'], meta['outputs'], meta['input_size']) == (task, names, list(size))
    assert meta['mean'] == list(input_normalization(cfg).mean)
    image = random_image(size, seed=5)
    ref = reference_outputs(model.eval(), task, image, input_normalization(cfg))
    got = openvino_export.run_openvino(openvino_export.compile_openvino(xml), image.numpy())
    for r, g in zip(ref, got):
        assert g.shape == tuple(r.shape)
        assert np.abs(r.numpy() - g).max() <= 1e-5 * r.abs().max().item()


def test_a_difference_beyond_the_tolerance_fails(tmp_path, capsys, monkeypatch):
    def off(compiled, image):
        return [o + 1.0 for o in run(compiled, image)]
    run = openvino_export.run_openvino
    monkeypatch.setattr(openvino_export, 'run_openvino', off)
    argv = [config_path('cls', 'rapidnet_ti_in1k.py'), '--out', str(tmp_path / 'm.xml'),
            '--input-size', '64', '64']
    assert tool.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == ('error: OpenVINO (CPU, f32) does not reproduce the PyTorch '
                                    'model (relative difference above 0.0001); see above')
    assert 'logits: OpenVINO (CPU, f32) vs PyTorch max |diff| 1 ' in captured.out
    assert list(tmp_path.iterdir()) == []  # the refused IR was not put in place


def test_bad_input_exits_with_one_line(tmp_path, capsys, monkeypatch):
    cfg = config_path('cls', 'rapidnet_ti_in1k.py')
    assert tool.main([cfg, '--out', str(tmp_path / 'm.xml'), '--input-size', '100']) == 2
    err = capsys.readouterr().err.strip()
    assert 'input size 100x100 cannot be taken' in err and '\n' not in err
    assert tool.main([cfg, '--out', str(tmp_path)]) == 2
    assert ('--format openvino writes a OpenVINO IR (.xml and .bin) file; name it *.xml'
            in capsys.readouterr().err)
    a_file = tmp_path / 'x'
    a_file.write_text('')
    assert tool.main([cfg, '--out', str(a_file / 'm.xml')]) == 2
    assert 'is a file, not a folder' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, 'openvino', None)  # as if not installed
    assert tool.main([cfg, '--out', str(tmp_path / 'ir' / 'm.xml')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: openvino is not installed') and '\n' not in err
    assert f'pip install openvino=={openvino_export.OPENVINO_VERSION}' in err
    assert not osp.exists(tmp_path / 'ir')
