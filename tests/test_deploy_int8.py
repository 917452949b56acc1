"""--quantize int8 (ExecuTorch, ONNX Runtime, OpenVINO): calibration images, the files written
and their report (size, latency, agreement with fp32), the agreement floor failing a
quantization broken on purpose, and the refusals."""
import os.path as osp

import numpy as np
import pytest
import torch
from deploy_helpers import ExportTool, config_path, perturb, set_up_logging_at_collection

from rapidnet_mm.config import build_model, load_model_config
from rapidnet_mm.deploy import int8, input_normalization, onnx_export
from rapidnet_mm.deploy.cpu_features import cpu_features
from rapidnet_mm.deploy.export_module import ExportError
from rapidnet_mm.deploy.formats import export_model
from rapidnet_mm.deploy.photos import PHOTOS, VIEWS, sample_images

TI = config_path('cls', 'rapidnet_ti_in1k.py')
set_up_logging_at_collection()
SIZE = (64, 64)


def ti_classifier():
    cfg = load_model_config(TI)
    return perturb(build_model(cfg)).eval(), input_normalization(cfg)


def test_default_calibration_and_evaluation_images_are_distinct_photographs():
    calib = int8.calibration_images(None, SIZE, 'RGB')
    assert calib.shape == (len(PHOTOS) * VIEWS, 3, *SIZE)
    evaluation = int8.evaluation_images(calib)
    assert torch.equal(evaluation, calib.flip(3))  # the same views, mirrored
    assert not any(torch.equal(e, c) for e in evaluation for c in calib)
    assert torch.equal(sample_images(SIZE), calib[:VIEWS])  # grace_hopper first, unchanged


def test_calibration_folder(tmp_path):
    from PIL import Image
    (tmp_path / 'a').mkdir()
    for i in range(3):
        Image.new('RGB', (40 + i, 30), (i * 50, 0, 0)).save(tmp_path / 'a' / f'{i}.png')
    (tmp_path / 'notes.txt').write_text('not an image')
    batch = int8.calibration_images(str(tmp_path), SIZE, 'BGR')
    assert batch.shape == (3, 3, *SIZE)
    assert batch[2, 2].unique().tolist() == [100.0] and batch[2, :2].abs().sum() == 0  # BGR
    for i in range(3, 150):
        Image.new('RGB', (8, 8)).save(tmp_path / 'a' / f'{i}.png')
    assert len(int8.calibration_files(str(tmp_path))) == int8.MAX_CALIBRATION
    calibration = int8.calibration_images(str(tmp_path), SIZE, 'RGB')
    assert len(calibration) == int8.MAX_CALIBRATION
    evaluation = int8.evaluation_images(calibration)
    assert len(evaluation) == int8.MAX_EVALUATION
    assert torch.equal(evaluation[1], calibration[4].flip(2))  # every 100 // 24-th, mirrored


def test_agreement_and_floor():
    ref = [[torch.tensor([[1., 0., 0.]])], [torch.tensor([[0., 1., 0.]])]]
    got = [[torch.tensor([[0.9, 0., 0.]])], [torch.tensor([[1., 0.9, 0.]])]]
    scores = int8.agreement('classifier', ref, got)
    assert scores['top1_agreement'] == 0.5
    assert scores['psnr'][0] == pytest.approx(10 * np.log10(1 / (1.02 / 6)), abs=1e-4)
    report = int8.Int8Report('m', 'rt', 'classifier', ['logits'], 2, 'c', 4, 1, 2., 1.,
                             **scores)
    with pytest.raises(ExportError, match='7.7 dB PSNR from the fp32 model, below the floor of '
                                          '25 dB'):
        int8.check_floor(report, None, None)
    with pytest.raises(ExportError, match='keeps the top-1 class of fp32 on 50.0% of the images, '
                                          'below the floor of 80%'):
        int8.check_floor(report, 7.0, None)
    int8.check_floor(report, 7.0, None, 0.5)
    assert report.floor == 'PSNR >= 7 dB, top-1 agreement >= 50%'


@pytest.mark.parametrize('top1,psnr,refused', [
    (0.750, 20.4, 'is 20.4 dB PSNR'),  # saturated int16 sums: -5.85 points on digits
    (0.750, 30.0, 'keeps the top-1 class of fp32 on 75.0%'),  # either floor refuses it
    (0.958, 41.1, None),  # the same model, 7-bit weights: +0.28 points
    (0.917, 36.5, None),  # 12 epochs, ExecuTorch on AVX-512 with VNNI: 0.00 points
    (0.958, 24.0, '24.0 dB PSNR'),
])
def test_classifier_floor_refuses_the_saturated_digits_file(top1, psnr, refused):
    """Figures of RapidNet-Ti trained on digits, ONNX Runtime int8 on an AVX2 CPU without VNNI:
    the 20 dB floor alone let the saturated file through."""
    report = int8.Int8Report('m', 'rt', 'classifier', ['logits'], 24, 'c', 4, 1, 2., 1.,
                             [psnr], top1_agreement=top1)
    if refused is None:
        int8.check_floor(report, None, None)
        return
    with pytest.raises(ExportError, match=refused):
        int8.check_floor(report, None, None)
    ref = torch.tensor([[[[1., 0.], [0., 0.]], [[0., 1.], [1., 1.]]]])  # classes [[0, 1], [1, 1]]
    seg = int8.agreement('segmentor', [[ref]], [[ref.flip(1)]])  # classes [[1, 0], [0, 0]]
    assert seg['pixel_agreement'] == 0.0
    seg = int8.agreement('segmentor', [[ref]], [[ref * 0.5]])
    assert seg['pixel_agreement'] == 1.0
    report = int8.Int8Report('m', 'rt', 'segmentor', ['seg_logits'], 1, 'c', 4, 1, 2., 1.,
                             seg['psnr'], pixel_agreement=0.85)
    with pytest.raises(ExportError, match='on 85.00% of pixels, below the floor of 90%'):
        int8.check_floor(report, None, None)


@pytest.mark.slow
@pytest.mark.parametrize('fmt,name', [('onnx', 'm.onnx'), ('openvino', 'm.xml'),
                                      ('executorch', 'm.pte')])
def test_int8_files_are_written_and_reported(tmp_path, fmt, name):
    if fmt == 'executorch':
        pytest.importorskip('executorch')
    model, norm = ti_classifier()
    lines = []
    out = str(tmp_path / name)
    # random weights: thin class margins, so the floor is lowered (the default floor is tested
    # above, and on a trained model in test_digits_int8.py)
    result = export_model(model, fmt, 'classifier', SIZE, norm, out, log=lines.append,
                          quantize='int8', min_psnr=10, min_top1_agreement=0.5)
    report = result.int8
    assert report.path == out and osp.exists(out)
    assert report.images == 12 and report.calibration == '12 views of 3 packaged photographs'
    assert report.bytes_int8 == int8.file_bytes(out) < report.bytes_fp32 / 3
    assert report.ms_int8 > 0 and report.ms_fp32 > 0
    assert report.psnr[0] >= 10 and 0.5 <= report.top1_agreement <= 1
    assert report.cpu == cpu_features().describe()
    printed = '\n'.join(lines)
    assert '\n    top-1 agreement ' in printed and f', on {report.cpu}:' in printed
    assert 'floor PSNR >= 10 dB, top-1 agreement >= 50%: passed' in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ['m.bin', 'm.xml'] if fmt == 'openvino' else [name])
    if fmt == 'onnx':
        assert onnx_int8_weight_range(out) == (-onnx_export.WEIGHT_BOUND, onnx_export.WEIGHT_BOUND)
        import onnx
        graph = onnx.load(out)
        opset = onnx_export.int8_default_opset()
        assert [o.version for o in graph.opset_import if o.domain in ('', 'ai.onnx')] == [opset]
        ops = [n.op_type for n in graph.graph.node]
        if opset >= onnx_export.GELU_OPSET:  # every GELU one op, no Erf left to quantize apart
            assert ops.count('Gelu') == 39 and 'Erf' not in ops
        assert f'\n    opset {opset}: GELU as ' in printed


def onnx_int8_weight_range(path):
    """The lowest and highest value of the int8 weights of a QDQ file's convolutions."""
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(path).graph
    inits = {i.name: i for i in graph.initializer}
    weights = [numpy_helper.to_array(inits[n.input[0]]) for n in graph.node
               if n.op_type == 'DequantizeLinear' and n.input[0] in inits
               and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert len(weights) > 50  # every conv of the network
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)


def test_onnx_int8_weights_cannot_saturate_int16_pair_sums():
    """x86 U8S8 kernels without VNNI add two uint8 x int8 products in int16: the file's weights
    keep that sum in range whatever the CPU that runs it."""
    assert 2 * 255 * onnx_export.WEIGHT_BOUND <= 2**15 - 1 < 2 * 255 * 127


@pytest.mark.slow
def test_segmentor_int8_reports_pixel_agreement(tmp_path):
    cfg = load_model_config(config_path('seg', 'fpn_rapidnet_ti_ade20k.py'))
    model = perturb(build_model(cfg)).eval()
    # random weights: class margins are thin, so the floor is lowered (it is tested below)
    result = export_model(model, 'openvino', 'segmentor', SIZE, input_normalization(cfg),
                          str(tmp_path / 'seg.xml'), log=print, quantize='int8',
                          min_pixel_agreement=0.5)
    assert 0.5 <= result.int8.pixel_agreement <= 1 and result.int8.floor == (
        'pixel agreement >= 50%')
    assert result.int8.top1_agreement is None and result.int8.names == ['seg_logits']
    assert result.int8.path == str(tmp_path / 'seg.xml')


@pytest.mark.slow
def test_a_broken_quantization_fails_the_floor(tmp_path, capsys, monkeypatch):
    """Wrong weight scales (every per-channel weight scale of the QDQ file tripled): the file
    is written by ONNX Runtime's tool and runs, but no longer computes the model."""
    import onnx
    from onnx import numpy_helper
    quantize = onnx_export.quantize_onnx

    def broken(fp32_path, out, input_name, calibration):
        quantize(fp32_path, out, input_name, calibration)
        graph = onnx.load(out)
        weights = {n.input[1] for n in graph.graph.node if n.op_type == 'DequantizeLinear'
                   and n.input[0].endswith('_quantized')}
        for init in graph.graph.initializer:
            if init.name in weights:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 3, init.name))
        onnx.save(graph, out)
    monkeypatch.setattr(onnx_export, 'quantize_onnx', broken)
    argv = [TI, '--out', str(tmp_path / 'm.onnx'), '--input-size', '64', '64', '--quantize',
            'int8']
    assert ExportTool('onnx').main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('error: the int8 file is ') and 'below the floor of 25 dB' in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('fmt,out', [('onnx', 'm.onnx'), ('openvino', 'm.xml'),
                                     ('executorch', 'm.pte')])
def test_int8_requests_are_refused_before_building(tmp_path, capsys, fmt, out):
    if fmt == 'executorch':
        pytest.importorskip('executorch')
    tool = ExportTool(fmt)
    out = str(tmp_path / 'o' / out)
    empty = tmp_path / 'empty'
    empty.mkdir()
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'x.jpg').write_bytes(b'not a jpeg')
    cases = [
        (['--calib', str(empty)], 'error: --calib {!r} holds no image'.format(str(empty))),
        (['--calib', str(bad)], f'error: --calib: {bad / "x.jpg"} is not a readable image'),
        (['--calib', str(tmp_path / 'none')], 'is not a folder'),
        (['--min-pixel-agreement', '2'], 'give a fraction between 0 and 1'),
    ]
    for extra, expected in cases:
        assert tool.main([TI, '--out', out, '--quantize', 'int8'] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and '\n' not in err
    assert tool.main([TI, '--out', out, '--calib', str(empty)]) == 2
    assert capsys.readouterr().err.strip() == ('error: --calib is an option of --quantize int8: '
                                               'add --quantize int8 or drop --calib')
    assert not osp.exists(tmp_path / 'o')


def test_quantize_is_refused_for_core_ml_and_torchscript(tmp_path, capsys):
    argv = [TI, '--out', str(tmp_path / 'm.mlpackage'), '--quantize', 'int8']
    assert ExportTool('coreml').main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --quantize is not offered for --format coreml: Core ML's activation "
        'quantization calibrates on macOS only; compress the weights with --compress int8 (or '
        'palette6/palette4) instead')
    argv = [TI, '--out', str(tmp_path / 'm.pt'), '--quantize', 'int8']
    assert ExportTool('torchscript').main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        'error: --quantize is an option of --format executorch / onnx / openvino, not of '
        '--format torchscript: drop it')
    assert list(tmp_path.iterdir()) == []


def test_openvino_int8_without_nncf_is_one_line(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'nncf', None)
    argv = [TI, '--out', str(tmp_path / 'm.xml'), '--quantize', 'int8']
    assert ExportTool('openvino').main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --quantize int8 with --format openvino needs nncf')
    assert err.endswith('pip install nncf==3.4.0 (or the deploy extra: pip install -e .[deploy])')
