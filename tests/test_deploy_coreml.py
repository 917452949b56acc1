"""Core ML export on Linux: the package's specification (ML program, target, FP16 weights, named
input/output, size), the report, and the errors that come before any conversion."""
import os.path as osp

import pytest
from deploy_helpers import IMAGENET, ExportTool, config_path, ti_classifier

ct = pytest.importorskip('coremltools')
from coremltools.proto import FeatureTypes_pb2  # noqa: E402

from rapidnet_mm.deploy import check_numerics, prepare_export  # noqa: E402
from rapidnet_mm.deploy.coreml_report import coreml_report  # noqa: E402

tool = ExportTool('coreml')
TI = config_path('cls', 'rapidnet_ti_in1k.py')
S_DET = config_path('det', 'maskrcnn_rapidnet_s_coco.py')


@pytest.mark.slow
def test_ti_classifier_exports_as_fp16_ml_program(tmp_path, capsys):
    out = str(tmp_path / 'rapidnet_ti.mlpackage')
    assert tool.main([TI, '--out', out]) == 0
    printed = capsys.readouterr().out
    spec = ct.utils.load_spec(out)
    assert spec.WhichOneof('Type') == 'mlProgram'
    assert spec.specificationVersion == ct.target.iOS16.value  # the default minimum target
    (image, ), (logits, ) = spec.description.input, spec.description.output
    assert image.name == 'image' and image.type.WhichOneof('Type') == 'imageType'
    assert (image.type.imageType.width, image.type.imageType.height) == (224, 224)
    assert image.type.imageType.colorSpace == FeatureTypes_pb2.ImageFeatureType.RGB
    assert logits.name == 'logits' and list(logits.type.multiArrayType.shape) == [1, 1000]

    report = coreml_report(out)
    # Everything is stored in FP16 but the 3 image-bias constants (the per-channel mean).
    assert report.weights_by_dtype.get('FLOAT32') == 3
    assert report.weights_by_dtype['FLOAT16'] > 0.99 * 6_000_000
    assert 1.95 < report.bytes_per_weight < 2.1
    assert report.op_histogram['conv'] == 74 and report.op_histogram['linear'] == 1
    assert report.dilated_convs == 8 and report.non_ane_ops == {}
    assert 'ops outside the Neural-Engine-friendly list: none' in printed
    assert 'fp32 max |diff|' in printed and 'fp16 PSNR' in printed


@pytest.mark.slow
def test_s_backbone_dilated_as_dense(tmp_path, capsys):
    out = str(tmp_path / 's_backbone.mlpackage')
    assert tool.main([S_DET, '--task', 'backbone', '--input-size', '64', '96', '--out', out,
                      '--dilated-as-dense']) == 0
    spec = ct.utils.load_spec(out)
    assert spec.WhichOneof('Type') == 'mlProgram'
    assert spec.specificationVersion == ct.target.iOS16.value
    assert [i.name for i in spec.description.input] == ['image']
    outputs = {o.name: list(o.type.multiArrayType.shape) for o in spec.description.output}
    assert outputs == {'feat_s4': [1, 32, 16, 24], 'feat_s8': [1, 64, 8, 12],
                       'feat_s16': [1, 112, 4, 6], 'feat_s32': [1, 224, 2, 3]}
    report = coreml_report(out)
    assert report.dilated_convs == 0  # every dilated conv rewritten as a dense one
    assert report.weights_by_dtype.get('FLOAT32') == 3  # the image bias; all else FP16
    assert 1.95 < report.bytes_per_weight < 2.1
    assert 'dilated convs: 0' in capsys.readouterr().out


@pytest.mark.slow
def test_fp32_and_newer_target(tmp_path):
    out = str(tmp_path / 'ti_fp32.mlpackage')
    assert tool.main([TI, '--task', 'backbone', '--input-size', '32', '32', '--out', out,
                      '--precision', 'fp32', '--min-target', 'iOS17']) == 0
    report = coreml_report(out)
    assert report.spec_version == ct.target.iOS17.value and report.min_target == 'iOS17'
    assert set(report.weights_by_dtype) == {'FLOAT32'}
    assert 3.9 < report.bytes_per_weight < 4.1
    assert report.dilated_convs == 8


def test_benchmark_needs_macos_and_stops_before_conversion(tmp_path, capsys):
    import sys
    if sys.platform == 'darwin':
        pytest.skip('on macOS --benchmark runs')
    out = str(tmp_path / 'x.mlpackage')
    assert tool.main([TI, '--out', out, '--benchmark', '10']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --benchmark needs macOS') and '\n' not in err
    assert not osp.exists(out)


@pytest.mark.parametrize('argv,message', [
    (['--input-size', '225', '224'], 'input size 225x224 cannot be taken'),
    (['--task', 'backbone'], '--task backbone needs --input-size'),
    (['--out-suffix'], '--format coreml writes a Core ML ML program file; name it *.mlpackage'),
])
def test_bad_input_exits_with_one_line(tmp_path, capsys, argv, message):
    out = str(tmp_path / 'x.mlpackage')
    if argv == ['--out-suffix']:
        argv, out = [], str(tmp_path / 'x.mlmodel')
    assert tool.main([TI, '--out', out] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith('error:') and '\n' not in err
    assert not osp.exists(out)


def test_deformable_ablation_is_refused_before_conversion(tmp_path, capsys):
    out = str(tmp_path / 'x.mlpackage')
    argv = [config_path('cls', 'ablation', 'rapidnet_ti_deformable_in1k.py'), '--out', out,
            '--input-size', '64', '64']
    assert tool.main(argv) == 2
    assert 'no deformable convolution' in capsys.readouterr().err
    assert not osp.exists(out)


@pytest.mark.parametrize('dense,mean_in_graph', [(False, False), (True, True)])
def test_numerics_check_of_the_export_module_in_fp32_and_fp16(dense, mean_in_graph):
    # the check export_coreml runs before converting; its FP16 run needs torch >= 2.2 on CPU
    model = ti_classifier()
    module = prepare_export(model, 'classifier', (64, 64), IMAGENET, dense, mean_in_graph)
    numerics = check_numerics(model, 'classifier', module, module, IMAGENET, ['logits'],
                              (64, 64))
    assert numerics.rel[0] < 1e-5 and numerics.ok()
    assert numerics.fp16_psnr[0] > 40
