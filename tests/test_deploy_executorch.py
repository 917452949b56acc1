"""ExecuTorch export (tools/deployment/export.py --format executorch): the .pte runs here with
ExecuTorch's runtime and equals PyTorch, every operator is delegated to XNNPACK, and bad
requests are refused before anything is built; nearest-neighbour upsamplings rewritten as
transposed convolutions equal PyTorch's bit for bit and are delegated."""
import os.path as osp
import sys
from importlib import metadata

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from deploy_helpers import (FILE_EXPORT_CASES, ExportTool, config_path, export_with_tool,
                            set_up_logging_at_collection)

pytest.importorskip('executorch')
set_up_logging_at_collection()

from rapidnet_mm.deploy import executorch_export, input_normalization  # noqa: E402
from rapidnet_mm.deploy import reference_outputs  # noqa: E402
from rapidnet_mm.deploy.comparison import random_image  # noqa: E402
from rapidnet_mm.deploy.nearest import NEAREST, nearest_as_transposed_conv  # noqa: E402

tool = ExportTool('executorch')
TI = config_path('cls', 'rapidnet_ti_in1k.py')


@pytest.mark.slow
@pytest.mark.parametrize('config,task,extra,names', FILE_EXPORT_CASES)
def test_pte_runs_here_equals_pytorch_and_is_fully_delegated(tmp_path, capsys, config, task,
                                                             extra, names):
    cfg, model, out = export_with_tool(tool, tmp_path, config, task, extra, 'm.pte')
    printed = capsys.readouterr().out
    assert 'ExecuTorch (XNNPACK, fp32) vs PyTorch max |diff|' in printed
    assert 'in 1 delegate call(s); not delegated: none' in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.pte', 'w.pth']

    size = tuple(int(v) for v in extra[1:3])
    image = random_image(size, seed=5)
    ref = reference_outputs(model.eval(), task, image, input_normalization(cfg))
    got = executorch_export.load_pte(out)(image)
    assert len(got) == len(names)
    for r, g in zip(ref, got):
        assert g.shape == r.shape
        assert (r - g).abs().max() <= 1e-5 * r.abs().max()


class Upsamplings(nn.Module):
    """Nearest upsamplings: three exact by powers of two (by scale, by size, by two factors)
    and two that stay: by 3, and by a scale of 4.1 whose output is 4x the input."""

    def forward(self, x):
        h, w = x.shape[-2:]
        return (F.interpolate(x, scale_factor=2, mode='nearest'),
                F.interpolate(x, size=(4 * h, 4 * w), mode='nearest'),
                F.interpolate(x, size=(2 * h, 4 * w), mode='nearest'),
                F.interpolate(x, size=(3 * h, 3 * w), mode='nearest'),
                F.interpolate(x, scale_factor=4.1, mode='nearest'))


@pytest.mark.parametrize('shape', [(2, 5, 3, 7), (1, 16, 8, 5)])
def test_nearest_upsampling_as_transposed_conv_is_bit_exact(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    module = Upsamplings().eval()
    program = torch.export.export(module, (x, ))
    assert nearest_as_transposed_conv(program) == 3
    targets = [n.target for n in program.graph.nodes if n.op == 'call_function']
    assert targets.count(NEAREST) == 2
    assert targets.count(torch.ops.aten.conv_transpose2d.input) == 3
    expected = module(x)
    for ref, got in zip(expected, program.module()(x)):
        assert got.shape == ref.shape and torch.equal(got, ref)
    # why the scale of 4.1 is left: PyTorch indexes by 1/4.1, not by blocks of 4
    blocks = x.repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert expected[1].equal(blocks) and not expected[4].equal(blocks)


@pytest.mark.slow
def test_nearest_upsamplings_are_delegated_and_exact_in_the_pte(tmp_path):
    x = torch.randn(1, 16, 8, 5, generator=torch.Generator().manual_seed(4))
    out = str(tmp_path / 'up.pte')
    summary = executorch_export.lower_module(Upsamplings().eval(), x, out)
    assert (summary.calls, summary.nearest_as_conv) == (1, 3)
    assert summary.not_delegated == {'aten_upsample_nearest2d_vec': 2}
    assert summary.format().endswith('NOT delegated: aten_upsample_nearest2d_vec x2; 3 '
                                     'nearest-neighbour upsampling(s) as depthwise transposed '
                                     'convolutions')
    for ref, got in zip(Upsamplings()(x), executorch_export.load_pte(out)(x)):
        assert torch.equal(got, ref)


def refused(argv, capsys) -> str:
    assert tool.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err
    return err


def test_missing_or_mismatched_install_is_one_line(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'x' / 'm.pte')
    real = metadata.version

    def missing(name):
        if name == 'executorch':
            raise metadata.PackageNotFoundError(name)
        return real(name)
    monkeypatch.setattr(executorch_export.metadata, 'version', missing)
    err = refused([TI, '--out', out], capsys)
    assert err == ('error: executorch is not installed; pip install executorch==1.5.1 '
                   'torchao==0.18.0 (or the deploy extra: pip install -e .[deploy])')

    monkeypatch.setattr(executorch_export.metadata, 'version',
                        lambda name: '0.17.0' if name == 'torchao' else real(name))
    err = refused([TI, '--out', out], capsys)
    assert 'torchao 0.17.0 are installed' in err
    assert err.endswith('pip install executorch==1.5.1 torchao==0.18.0 (or the deploy extra: '
                        'pip install -e .[deploy])')

    monkeypatch.setattr(executorch_export.metadata, 'version', real)
    monkeypatch.setitem(sys.modules, 'executorch.runtime', None)  # a runtime that cannot load
    err = refused([TI, '--out', out], capsys)
    assert 'does not load beside torch' in err and 'pip install torch==2.14.1' in err
    assert not osp.exists(tmp_path / 'x')


def test_unavailable_delegates_are_refused(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / 'm.pte')
    from executorch.runtime import Runtime
    registry = type(Runtime.get().backend_registry)
    monkeypatch.setattr(registry, 'is_available', lambda self, name: False)
    err = refused([TI, '--out', out], capsys)
    assert err.startswith('error: the installed ExecuTorch runtime has no XNNPACK backend')
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, 'executorch.backends.apple.coreml.partition', None)
    err = refused([TI, '--out', out, '--delegate', 'coreml'], capsys)
    assert err.startswith("error: ExecuTorch's Core ML delegate is not available")
    assert err.endswith('pip install coremltools==9.0')
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_refused_before_building(tmp_path, capsys):
    out = str(tmp_path / 'm.pte')
    err = refused([TI, '--out', out, '--delegate', 'coreml', '--quantize', 'int8'], capsys)
    assert '--format coreml --compress int8' in err
    err = refused([TI, '--out', out, '--input-size', '100'], capsys)
    assert 'input size 100x100 cannot be taken' in err
    err = refused([TI, '--out', str(tmp_path / 'm.onnx')], capsys)
    assert err == ('error: --out {!r}: --format executorch writes a ExecuTorch program file; '
                   'name it *.pte'.format(str(tmp_path / 'm.onnx')))
    err = refused([TI, '--out', out, '--opset', '13'], capsys)
    assert err == ('error: --opset is an option of --format onnx, not of --format executorch: '
                   'drop it')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_core_ml_delegate_is_exported_and_said_to_run_on_apple_only(tmp_path, capsys):
    pytest.importorskip('coremltools')
    out = str(tmp_path / 'm.pte')
    assert tool.main([TI, '--out', out, '--delegate', 'coreml', '--input-size', '64', '64']) == 0
    printed = capsys.readouterr().out
    assert 'delegated to coreml:' in printed and 'not delegated: none' in printed
    assert 'runs on Apple devices only' in printed
    assert 'the exported program (PyTorch) vs PyTorch max |diff|' in printed
    assert osp.getsize(out) > 1e6
