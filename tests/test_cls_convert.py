"""The authors' ImageNet checkpoints (synthesised in their exact layout and file structure)
convert to checkpoints that load strictly into configs/cls models and give the same logits."""
import argparse
import importlib.util
import os.path as osp
import pathlib
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

from numeric_helpers import assert_close_to_scale
from rapidnet_mm.checkpoints import CheckpointLayoutError, convert_checkpoint
from cls_helpers import PYTHON, authors_checkpoint, run_tool
from original_layout import OriginalRapidNet, randomize_
from tool_helpers import ROOT

pytestmark = pytest.mark.core

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
# The two implementations sum in different orders, so float32 agreement is not bit-exact: it is
# measured against the logits' scale, which the randomised weights do not bound.
REL = 1e-5


def config_model(arch):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/cls/rapidnet_{arch}_in1k.py'))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model).eval()


def originals(arch):
    raw = randomize_(OriginalRapidNet(arch), seed=1).eval()
    ema = randomize_(OriginalRapidNet(arch), seed=2).eval()
    return raw, ema


def logits(model):
    with torch.no_grad():
        return model(X, mode='tensor') if hasattr(model, 'data_preprocessor') else model(X)


@pytest.mark.parametrize('arch', ['ti', 's', 'm', 'b'])
def test_round_trip_gives_the_ema_model_logits(arch):
    raw, ema = originals(arch)
    conversion = convert_checkpoint(authors_checkpoint(raw, ema))
    assert (conversion.kind, conversion.arch) == ('classification', arch)
    model = config_model(arch)
    model.load_state_dict(conversion.state_dict, strict=True)
    assert_close_to_scale(logits(model), logits(ema), REL)
    assert (logits(model) - logits(raw)).abs().max() > 0.1  # the EMA set, not the raw one


def test_raw_weights_on_request_and_missing_ema_named():
    raw, ema = originals('ti')
    ckpt = authors_checkpoint(raw, ema)
    model = config_model('ti')
    model.load_state_dict(convert_checkpoint(ckpt, weights='raw').state_dict, strict=True)
    assert_close_to_scale(logits(model), logits(raw), REL)
    del ckpt['state_dict_ema']
    with pytest.raises(CheckpointLayoutError, match='--weights raw'):
        convert_checkpoint(ckpt)


def test_single_weight_files_and_folded_positional_encoding():
    reference = randomize_(OriginalRapidNet('ti'), seed=3).eval()
    state = dict(reference.state_dict())
    for key in [k for k in state if '.cpe.pe.' in k]:
        value = state.pop(key).clone()
        if key.endswith('weight'):
            value[:, 0, 3, 3] += 1  # the identity folded into the centre tap
        state[key.replace('.cpe.pe.', '.cpe.reparam_conv.')] = value
    conversion = convert_checkpoint({'model': state})
    assert any('--weights does not apply' in n for n in conversion.notes)
    assert any('reparam_conv' in n for n in conversion.notes)
    model = config_model('ti')
    model.load_state_dict(conversion.state_dict, strict=True)
    assert_close_to_scale(logits(model), logits(reference), REL)


def test_only_argparse_namespace_is_allowed(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'convert_official', osp.join(ROOT, 'tools/model_converters/convert_official.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    raw, ema = originals('ti')
    ckpt = authors_checkpoint(raw, ema)
    torch.save(ckpt, tmp_path / 'ok.pth')
    assert isinstance(tool.load_official(str(tmp_path / 'ok.pth'))['args'], argparse.Namespace)
    ckpt['args'].output_dir = pathlib.PurePosixPath('/results')  # any other type: refused
    torch.save(ckpt, tmp_path / 'other.pth')
    with pytest.raises(pickle.UnpicklingError, match='PurePosixPath'):
        tool.load_official(str(tmp_path / 'other.pth'))


def test_incomplete_or_foreign_files_are_refused():
    raw, ema = originals('ti')
    ckpt = authors_checkpoint(raw, ema)
    del ckpt['state_dict_ema']['dist_head.bias']
    with pytest.raises(CheckpointLayoutError, match=r'head\.dist_head\.bias'):
        convert_checkpoint(ckpt)
    with pytest.raises(CheckpointLayoutError, match='tried: classification'):
        convert_checkpoint({'state_dict': {'conv1.weight': torch.zeros(1)}})
    with pytest.raises(ValueError, match='do not apply'):
        convert_checkpoint(authors_checkpoint(raw, ema), colour='blue')


def test_command_line_converts_an_authors_file(tmp_path):
    raw, ema = originals('ti')
    src, dst = tmp_path / 'RapidNet_Ti.pth', tmp_path / 'out' / 'rapidnet_ti_in1k.pth'
    torch.save(authors_checkpoint(raw, ema), src)
    with pytest.raises(Exception, match='argparse.Namespace'):  # why allowing it is needed
        torch.load(src, weights_only=True)
    result = run_tool([PYTHON, 'tools/model_converters/convert_official.py', str(src), str(dst)])
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert 'allowing exactly one extra type: argparse.Namespace' in out
    assert 'RapidNet-ti (detected from the tensor shapes)' in out
    assert "converted the ema weights ('state_dict_ema')" in out
    assert 'for configs/cls/rapidnet_ti_in1k.py' in out
    model = config_model('ti')
    checkpoint = load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    assert checkpoint['meta']['arch'] == 'ti'
    assert_close_to_scale(logits(model.eval()), logits(ema), REL)

    # unmapped keys: refused, listed, nothing written
    bad = authors_checkpoint(raw, ema)
    bad['state_dict_ema']['backbone.2.6.mixer.attention.qkv.weight'] = torch.zeros(1)
    torch.save(bad, tmp_path / 'bad.pth')
    unmapped = run_tool([PYTHON, 'tools/model_converters/convert_official.py', str(tmp_path / 'bad.pth'),
                         str(tmp_path / 'bad_out.pth')])
    assert unmapped.returncode != 0
    assert 'backbone.2.6.mixer.attention.qkv.weight' in unmapped.stderr
    assert 'map to nothing' in unmapped.stderr
    assert not (tmp_path / 'bad_out.pth').exists()
