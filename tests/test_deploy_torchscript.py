"""The inference runtimes (frozen TorchScript, inductor) and the TorchScript export: outputs
equal to the PyTorch model's, metadata, and clear errors."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from deploy_helpers import (FILE_EXPORT_CASES, ExportTool, config_path, export_with_tool, perturb,
                            rel_diff)

from rapidnet_mm.deploy import input_normalization, reference_outputs
from rapidnet_mm.deploy.comparison import random_image
from rapidnet_mm.deploy.runtime import RuntimeSetupError, build_runtime, load_torchscript
from rapidnet_mm.deploy.torchscript_export import read_metadata
from rapidnet_mm.models import RapidNet

tool = ExportTool('torchscript')
TINY_ARCH = dict(ir_blocks=(1, 1, 1, 0), mldc_blocks=(0, 0, 1, 1),
                 channels=(16, 24, 32, 48))


def tiny_deploy_backbone() -> nn.Module:
    model = perturb(RapidNet(TINY_ARCH, out_indices=(0, 1, 2, 3)))
    model.eval().switch_to_deploy()
    return model


@pytest.mark.parametrize('runtime', ['eager', 'torchscript',
                                     pytest.param('inductor', marks=pytest.mark.slow)])
def test_runtimes_give_the_eager_outputs(runtime):
    model = tiny_deploy_backbone()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
        fn = build_runtime(model, runtime, x)
        # another batch and size than the one traced on: a frozen trace of a fully
        # convolutional network is not tied to it
        x2 = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(2))
        ref2, got2 = model(x2), fn(x2)
        got = fn(x)
    assert len(got) == 4
    for r, g in zip(list(ref) + list(ref2), list(got) + list(got2)):
        assert g.shape == r.shape and rel_diff(r, g) < 1e-5


def test_runtimes_refuse_training_mode_and_unknown_names():
    model = RapidNet(TINY_ARCH).train()
    x = torch.zeros(1, 3, 64, 64)
    for runtime in ('torchscript', 'inductor'):
        with pytest.raises(RuntimeSetupError, match='needs an eval-mode module.*call .eval'):
            build_runtime(model, runtime, x)
    with pytest.raises(RuntimeSetupError, match="unknown runtime 'tensorrt'; choose from"):
        build_runtime(model.eval(), 'tensorrt', x)


@pytest.mark.slow
@pytest.mark.parametrize('config,task,extra,names', FILE_EXPORT_CASES)
def test_torchscript_export_equals_pytorch(tmp_path, capsys, config, task, extra, names):
    cfg, model, out = export_with_tool(tool, tmp_path, config, task, extra, 'model.pt')
    assert 'TorchScript (loaded, optimised) vs PyTorch max |diff|' in capsys.readouterr().out

    size = tuple(int(v) for v in extra[1:3])
    meta = read_metadata(out)
    assert meta['task'] == task and meta['outputs'] == names
    assert meta['input_size'] == list(size) and meta['mean'] == [123.675, 116.28, 103.53]
    image = random_image(size, seed=5)
    ref = reference_outputs(model.eval(), task, image, input_normalization(cfg))
    for optimize in (False, True):  # the portable file, and after oneDNN prepacking
        with torch.no_grad():
            got = load_torchscript(out, optimize=optimize)(image)
        got = [got] if task == 'classifier' else list(got)
        assert len(got) == len(names)
        for r, g in zip(ref, got):
            assert g.shape == r.shape and rel_diff(r, g) < 1e-5


def test_torchscript_export_bad_input_exits_with_one_line(tmp_path, capsys):
    cfg_path = config_path('cls', 'rapidnet_ti_in1k.py')
    assert tool.main([cfg_path, '--out', str(tmp_path / 'x.pt'), '--input-size', '100']) == 2
    err = capsys.readouterr().err.strip()
    assert 'input size 100x100 cannot be taken' in err and '\n' not in err
    assert tool.main([cfg_path, '--out', str(tmp_path / 'x.onnx')]) == 2
    assert '--format torchscript writes a TorchScript file; name it *.pt' in capsys.readouterr().err
    assert tool.main([config_path('det', 'maskrcnn_rapidnet_s_coco.py'), '--out',
                      str(tmp_path / 'x.pt')]) == 2
    assert 'MaskRCNN is an mmdet detector: only --task backbone exports' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'x.pt')


def test_read_metadata_refuses_a_foreign_file(tmp_path):
    from rapidnet_mm.deploy.export_module import ExportError
    path = str(tmp_path / 'plain.pt')
    torch.jit.save(torch.jit.script(nn.Identity()), path)
    with pytest.raises(ExportError, match='not written by tools/deployment/export.py --format torchscript'):
        read_metadata(path)
