"""Compressed Core ML packages on Linux: size per weight of each --compress mode, the PSNR read
back from the package's stored weights, the PSNR floor, and the refusals before any conversion.

One FP16 conversion of RapidNet-Ti at 32x32 (the weight count does not depend on the input size)
is shared by the size and PSNR tests."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from deploy_helpers import ExportTool, config_path, perturb

ct = pytest.importorskip('coremltools')
pytest.importorskip('sklearn')  # coremltools' k-means palettisation

from rapidnet_mm.config import build_model, load_model_config  # noqa: E402
from rapidnet_mm.deploy.coreml import convert  # noqa: E402
from rapidnet_mm.deploy.coreml_report import coreml_report  # noqa: E402
from rapidnet_mm.deploy.coreml_compress import (COMPRESSIONS, compress_mlmodel,  # noqa: E402
                                                package_psnr, package_weights)
from rapidnet_mm.deploy.photos import sample_images  # noqa: E402
from rapidnet_mm.deploy.export_module import ExportError, prepare_export  # noqa: E402
from rapidnet_mm.deploy.normalization import input_normalization  # noqa: E402

tool = ExportTool('coreml')
TI = config_path('cls', 'rapidnet_ti_in1k.py')
SIZE = (32, 32)


@pytest.fixture(scope='module')
def ti(tmp_path_factory):
    cfg = load_model_config(TI)
    norm = input_normalization(cfg)
    model = perturb(build_model(cfg)).eval()
    module = prepare_export(model, 'classifier', SIZE, norm)
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(1, 3, *SIZE))
    mlmodel = convert(traced, SIZE, norm, ['logits'])
    folder = tmp_path_factory.mktemp('coreml_compress')
    fp16 = str(folder / 'fp16.mlpackage')
    mlmodel.save(fp16)
    images = sample_images(SIZE, norm.channel_order)

    def score(path):
        return package_psnr(path, module, model, 'classifier', norm, images, half=True)[0]

    return SimpleNamespace(model=model, module=module, norm=norm, mlmodel=mlmodel,
                           folder=folder, fp16=fp16, fp16_report=coreml_report(fp16),
                           fp16_psnr=score(fp16), score=score)


def test_sample_images_are_photographs():
    images = sample_images((64, 48))
    assert images.shape == (4, 3, 64, 48) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 255
    assert len({tuple(im.flatten()[:64].tolist()) for im in images}) == 4  # four views
    bgr = sample_images((64, 48), 'BGR')
    assert torch.equal(bgr, images.flip(1))
    # a photograph, not noise: neighbouring pixels are strongly correlated
    x = images[:, :, :, 1:].flatten() - images.mean()
    y = images[:, :, :, :-1].flatten() - images.mean()
    assert (x * y).mean() / (x * x).mean() > 0.8


@pytest.mark.slow
def test_fp16_package_reads_back_to_the_model(ti):
    state = package_weights(ti.fp16, ti.module)
    params = dict(ti.module.named_parameters())
    assert set(state) == set(params)
    for name, value in state.items():  # FP16 rounding only
        assert torch.allclose(value, params[name], rtol=1e-3, atol=1e-4), name
    assert 55 < ti.fp16_psnr < 120


@pytest.mark.slow
@pytest.mark.parametrize('mode,op', [('int8', 'constexpr_affine_dequantize'),
                                     ('palette6', 'constexpr_lut_to_dense'),
                                     ('palette4', 'constexpr_lut_to_dense')])
def test_compressed_package_size_and_psnr(ti, mode, op):
    path = str(ti.folder / f'{mode}.mlpackage')
    compress_mlmodel(ti.mlmodel, mode).save(path)
    report, fp16 = coreml_report(path), ti.fp16_report
    # the same weights, nearly all of them now compressed
    assert report.weight_count == fp16.weight_count
    compressed = report.weights_by_dtype[op] / report.weight_count
    assert compressed > 0.99
    # nbits/8 bytes per compressed weight, 2 per FP16 one, plus the look-up tables or the
    # per-channel scales (int8: about 0.035 bytes per weight for Ti) and the program
    nominal = COMPRESSIONS[mode].bytes_per_weight
    expected = nominal * compressed + 2 * (1 - compressed)
    assert expected < report.bytes_per_weight < expected + 0.05
    assert 1.95 < fp16.bytes_per_weight < 2.1
    assert fp16.size_bytes / report.size_bytes == pytest.approx(2 / nominal, rel=0.05)
    # its own weights, read back, fall below FP16 but stay above the mode's default floor
    value = ti.score(path)
    assert COMPRESSIONS[mode].min_psnr < value < ti.fp16_psnr - 5
    assert mode != 'palette4' or value < 35


@pytest.mark.slow
def test_unmappable_weight_fails_clearly(ti):
    wrapped = nn.Sequential(ti.module)  # every layer name now starts with '0.'
    with pytest.raises(ExportError, match='matches no layer of the export module'):
        package_weights(ti.fp16, wrapped)


def _error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('error:')]
    assert errors == [lines[-1]], err
    return errors[0]


@pytest.mark.slow
def test_tool_writes_compressed_package_and_reports_psnr(tmp_path, capsys):
    out = tmp_path / 'ti_int8.mlpackage'
    argv = [TI, '--input-size', *map(str, SIZE), '--out', str(out), '--compress', 'int8']
    assert tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'fp16 package vs FP32 PyTorch on 4 photos: logits' in printed
    assert 'int8 package vs FP32 PyTorch on 4 photos: logits' in printed
    assert 'constexpr_affine_dequantize' in printed
    assert 'ops outside the Neural-Engine-friendly list: none' in printed
    spec = ct.utils.load_spec(str(out))
    assert spec.description.metadata.userDefined['compression'] == 'int8'
    assert 0.98 < coreml_report(str(out)).bytes_per_weight < 1.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ti_int8.mlpackage']  # no leftovers


@pytest.mark.slow
def test_psnr_below_floor_fails_with_the_figure_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / 'ti_int8.mlpackage'
    argv = [TI, '--input-size', *map(str, SIZE), '--out', str(out), '--compress', 'int8',
            '--min-psnr', '1000']
    assert tool.main(argv) == 2
    captured = capsys.readouterr()
    line = _error_line(captured.err)
    assert line.startswith('error: the int8 package reaches only ')
    assert 'dB PSNR against the FP32 model, below the 1000 dB floor (--min-psnr)' in line
    figure = float(line.split('reaches only ')[1].split(' dB')[0])
    assert math.isfinite(figure) and 20 < figure < 1000
    assert f'int8 package vs FP32 PyTorch on 4 photos: logits {figure:.1f} dB' in captured.out
    assert list(tmp_path.iterdir()) == []  # neither the package nor a temporary one


@pytest.mark.parametrize('argv,message', [
    (['--compress', 'palette4', '--min-target', 'iOS15'],
     '--compress palette4 needs --min-target iOS16 or newer: iOS15 has no ops for compressed'),
    (['--compress', 'int8', '--precision', 'fp32'],
     '--compress int8 with --precision fp32: this exporter compresses FP16 packages only'),
    (['--min-psnr', '30'], '--min-psnr is the floor for a compressed package'),
])
def test_impossible_combinations_are_refused_before_conversion(tmp_path, capsys, argv, message):
    out = tmp_path / 'x.mlpackage'
    assert tool.main([TI, '--out', str(out)] + argv) == 2
    captured = capsys.readouterr()
    assert _error_line(captured.err).startswith(f'error: {message}')
    assert 'building' not in captured.out  # refused before the model is built
    assert not out.exists()
