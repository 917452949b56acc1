"""Shared by the tests/test_deploy_*.py files: configs, checkpoints and non-trivial weights."""
import os.path as osp

import torch
import torch.nn as nn
from backbone_helpers import randomize
from mmpretrain.models import ImageClassifier
from tool_helpers import ROOT, load_tool

from rapidnet_mm.deploy import InputNormalization
from rapidnet_mm.models.layers import LayerScale

IMAGENET = InputNormalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), 'RGB')


# (config, task, extra tool arguments, output names) that the file exporters (ONNX,
# TorchScript) are tested on: a classifier, and a detector backbone with --dilated-as-dense.
FILE_EXPORT_CASES = [
    (('cls', 'rapidnet_ti_in1k.py'), 'classifier', ['--input-size', '96', '96'], ['logits']),
    (('det', 'maskrcnn_rapidnet_s_coco.py'), 'backbone',
     ['--input-size', '64', '96', '--dilated-as-dense'],
     ['feat_s4', 'feat_s8', 'feat_s16', 'feat_s32']),
]


def config_path(*parts: str) -> str:
    return osp.join(ROOT, 'configs', *parts)


@torch.no_grad()
def perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """``randomize`` (non-trivial BN statistics, so a wrong fold shows), with
    layer scales of order 0.1 instead of 1 so that activations stay within FP16 range."""
    randomize(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, LayerScale):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.1 + 0.05)
    return model


def ti_classifier() -> ImageClassifier:
    """RapidNet-Ti's classifier with perturbed (non-trivial) weights, in eval mode."""
    torch.manual_seed(0)
    model = ImageClassifier(backbone=dict(type='RapidNet', arch='ti'),
                            head=dict(type='RapidNetClsHead', arch='ti'))
    return perturb(model).eval()


def save_checkpoint(model: nn.Module, path) -> str:
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def rel_diff(ref: torch.Tensor, got: torch.Tensor) -> float:
    return (ref - got).abs().max().item() / ref.abs().max().item()


class ExportTool:
    """``tools/deployment/export.py`` with ``--format`` set: ``main(argv)`` as the tool's."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.module = load_tool('deployment/export')

    def main(self, argv: list) -> int:
        return self.module.main(list(argv) + ['--format', self.fmt])


def export_with_tool(tool, tmp_path, config, task: str, extra: list, out_name: str):
    """Build ``config``'s model with perturbed weights, save them, and export with ``tool`` (an
    :class:`ExportTool`); returns the config, the model and the output path."""
    from rapidnet_mm.config import build_model, load_model_config
    cfg_path = config_path(*config)
    cfg = load_model_config(cfg_path)
    model = perturb(build_model(cfg))
    ckpt = save_checkpoint(model, tmp_path / 'w.pth')
    out = str(tmp_path / out_name)
    assert tool.main([cfg_path, '--checkpoint', ckpt, '--task', task, '--out', out] + extra) == 0
    return cfg, model, out



def set_up_logging_at_collection() -> None:
    """Create the loggers that the exporters' libraries attach to ``sys.stdout``/``sys.stderr``
    now, outside any test's output capture.

    mmengine's current MMLogger and some modules that ExecuTorch and mmseg import (torch.fx's
    source matcher, coremltools.optimize.torch, huggingface_hub) bind a stream handler to the
    stream of the moment. Created inside a test that captures output, the handler keeps that
    test's capture stream, and a later test's log record then fails on the closed stream
    ('--- Logging error ---' on stderr).
    """
    import importlib
    import importlib.util

    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()
    names = ['mmseg.apis', 'mmseg.models']
    if importlib.util.find_spec('executorch'):
        from rapidnet_mm.deploy.executorch_export import import_executorch
        import_executorch()
        names += ['executorch.backends.xnnpack.partition.xnnpack_partitioner',
                  'executorch.backends.xnnpack.quantizer.xnnpack_quantizer',
                  'executorch.backends.apple.coreml.partition',
                  'executorch.devtools.backend_debug', 'torchao.quantization.pt2e.quantize_pt2e']
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional package missing: the tests that need it skip
            pass
