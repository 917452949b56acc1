"""--task segmentor: backbone, neck, decode head and the resize to the input size, in every
format, equal to mmseg's own inference (mmseg.apis.inference_model) on a photograph; and the
tasks each kind of config refuses."""
import pytest
import torch
from deploy_helpers import (ExportTool, config_path, export_with_tool,
                            set_up_logging_at_collection)

from rapidnet_mm.deploy import input_normalization
from rapidnet_mm.deploy.comparison import mmseg_logits
from rapidnet_mm.deploy.formats import load_exported
from rapidnet_mm.deploy.photos import sample_images

SEG = ('seg', 'fpn_rapidnet_ti_ade20k.py')
SIZE = (64, 96)
FILES = {'onnx': 'm.onnx', 'openvino': 'm.xml', 'torchscript': 'm.pt', 'executorch': 'm.pte'}
set_up_logging_at_collection()


def class_maps_equal_except_ties(ref: torch.Tensor, got: torch.Tensor) -> int:
    """Pixels whose class differs where the reference's best two classes are not tied."""
    top2 = ref.topk(2, dim=1).values
    ties = (top2[:, 0] - top2[:, 1]) <= 2 * (ref - got).abs().max()
    return int(((ref.argmax(1) != got.argmax(1)) & ~ties).sum())


@pytest.mark.slow
@pytest.mark.parametrize('fmt', sorted(FILES))
def test_segmentor_file_equals_mmseg_inference_on_a_photograph(tmp_path, capsys, fmt):
    pytest.importorskip({'onnx': 'onnxruntime'}.get(fmt, fmt if fmt != 'torchscript' else 'torch'))
    extra = ['--input-size', *map(str, SIZE)]
    cfg, model, out = export_with_tool(ExportTool(fmt), tmp_path, SEG, 'segmentor', extra,
                                       FILES[fmt])
    printed = capsys.readouterr().out
    assert 'differ outside ties' in printed and ' 0 differ outside ties' in printed

    norm = input_normalization(cfg)
    photo = sample_images(SIZE, norm.channel_order, ('flower', ))[:1]  # not the tool's photo
    ref = mmseg_logits(model.eval(), photo, norm)
    assert ref.shape == (1, 150, *SIZE)
    got, = load_exported(fmt, out)(photo)
    assert got.shape == ref.shape
    assert (ref - got).abs().max() <= 1e-4 * ref.abs().max()
    assert class_maps_equal_except_ties(ref, got) == 0
    if fmt == 'executorch':
        # one XNNPACK call: the FPN's three nearest 2x upsamplings as transposed convolutions
        assert ('in 1 delegate call(s); not delegated: none; 3 nearest-neighbour upsampling(s) '
                'as depthwise transposed convolutions') in printed
        # this photo's best two classes are >= 2.4e-3 apart, >10x the file's differences
        assert torch.equal(got.argmax(1), ref.argmax(1))


@pytest.mark.slow
def test_core_ml_segmentor_is_checked_against_mmseg(tmp_path, capsys):
    pytest.importorskip('coremltools')
    extra = ['--input-size', *map(str, SIZE), '--precision', 'fp32']
    export_with_tool(ExportTool('coreml'), tmp_path, SEG, 'segmentor', extra, 'm.mlpackage')
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.strip().startswith('seg_logits: fp32'))
    assert float(line.split('(')[1].split(' of')[0]) <= 1e-4  # traced module vs mmseg
    assert 'fp32 package vs FP32 PyTorch on 4 photos: seg_logits' in printed


def refused(tool, argv, capsys) -> str:
    assert tool.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err
    return err


def test_tasks_a_config_cannot_take_are_refused(tmp_path, capsys):
    tool = ExportTool('onnx')
    out = str(tmp_path / 'm.onnx')
    size = ['--input-size', '64', '64']
    err = refused(tool, [config_path('cls', 'rapidnet_ti_in1k.py'), '--task', 'segmentor',
                         '--out', out] + size, capsys)
    assert err == ('error: --task segmentor needs a segmentation config (an mmseg '
                   'EncoderDecoder), got RapidNetDistiller: use --task classifier')
    det = config_path('det', 'maskrcnn_rapidnet_ti_coco.py')
    err = refused(tool, [det, '--task', 'segmentor', '--out', out] + size, capsys)
    assert err == ('error: --task segmentor needs a segmentation config; MaskRCNN is an mmdet '
                   'detector: export its backbone with --task backbone')
    err = refused(tool, [det, '--task', 'classifier', '--out', out] + size, capsys)
    assert err.startswith('error: MaskRCNN is an mmdet detector: only --task backbone exports '
                          'it here (its heads need RoIAlign and NMS)')
    err = refused(tool, [config_path(*SEG), '--task', 'segmentor', '--out', out], capsys)
    assert err == 'error: --task segmentor needs --input-size H W (e.g. --input-size 512 512)'
    assert list(tmp_path.iterdir()) == []
