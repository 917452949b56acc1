"""tools/analysis_tools/profile_int8.py: per-operator profiles of the fp32 and int8 files (no
speed is asserted: the figures go in the docs)."""
import pytest
from deploy_helpers import config_path, load_tool

import torch
import torch.nn as nn

from rapidnet_mm.analysis.op_profile import (OnnxRuntimeProfiler, OpProfile, attribute,
                                             conv_kind, format_pair, onnx_conv_kinds,
                                             profile_alternating, xnnpack_row)

tool = load_tool('analysis_tools/profile_int8')

# RapidNet-Ti's 74 convolutions by kind (the deploy form, the classifier's embedding included)
TI_CONVS = {'conv: pointwise': 41, 'conv: depthwise 3x3': 12, 'conv: depthwise 7x7': 8,
            'conv: dilated 3x3 (d=2)': 4, 'conv: dilated 3x3 (d=3)': 4, 'conv: dense 3x3': 4,
            'conv: image 3x3': 1}


@pytest.mark.core
@pytest.mark.parametrize('shape,group,dilation,kind', [
    ((16, 3, 3, 3), 1, (1, 1), 'image 3x3'),
    ((128, 1, 3, 3), 128, (1, 1), 'depthwise 3x3'),
    ((112, 1, 7, 7), 112, (1, 1), 'depthwise 7x7'),
    ((112, 1, 3, 3), 112, (2, 2), 'depthwise 3x3 (d=2)'),
    ((448, 112, 1, 1), 1, (1, 1), 'pointwise'),
    ((64, 32, 3, 3), 1, (1, 1), 'dense 3x3'),
    ((64, 8, 3, 3), 4, (1, 1), 'dense 3x3 (groups=4)'),
    ((112, 112, 3, 3), 1, (3, 3), 'dilated 3x3 (d=3)'),
])
def test_convolutions_are_named_by_structure(shape, group, dilation, kind):
    assert conv_kind(shape, group, dilation) == kind


@pytest.mark.core
def test_profile_entries_go_to_the_conv_whose_name_is_their_longest_prefix():
    kinds = {'/a/Conv': 'pointwise', '/a/Conv_1': 'depthwise 3x3'}
    assert attribute('/a/Conv_output_0_nchwc', 'Conv', kinds) == 'conv: pointwise'
    assert attribute('/a/Conv_1_token_7', 'QLinearConv', kinds) == 'conv: depthwise 3x3'
    assert attribute('/a/Conv_1/WithoutBiases', 'GroupConvolution', kinds) == \
        'conv: depthwise 3x3'
    assert attribute('/b/Conv', 'Convolution', kinds) == 'conv: other'
    # int8 kernels of an fp32 operator share its row; quantize steps get theirs
    assert attribute('/x/Add', 'QLinearAdd', kinds) == 'Add'
    assert attribute('/x/Gemm', 'QGemm', kinds) == 'Gemm'
    assert attribute('/x/q', 'QuantizeLinear', kinds) == 'quantize'
    assert attribute('/x/g', 'Gelu', kinds) == 'GELU'


def test_convolutions_fused_with_their_activation_keep_their_kind(tmp_path):
    # ONNX Runtime names a Conv fused with the Clip of a ReLU6 after the Clip's output
    pytest.importorskip('onnxruntime')
    from rapidnet_mm.deploy.onnx_export import write_onnx
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                        nn.Conv2d(8, 16, 1)).eval()
    path = str(tmp_path / 'net.onnx')
    x = torch.randn(1, 3, 32, 32)
    write_onnx(net, x, path, 'input', [])
    kinds = onnx_conv_kinds(path)
    assert sorted(set(kinds.values())) == ['depthwise 3x3', 'image 3x3', 'pointwise']
    assert sum(name.endswith('Clip') for name in kinds) == 1
    profile, = profile_alternating(
        [OnnxRuntimeProfiler(path, x.numpy(), kinds, 'fp32', 1, str(tmp_path))], runs=2)
    assert {r: n for r, n in profile.nodes.items() if r.startswith('conv')} == {
        'conv: image 3x3': 1, 'conv: depthwise 3x3': 1, 'conv: pointwise': 1}


@pytest.mark.core
@pytest.mark.parametrize('event,row', [
    ('Convolution (NHWC, QC8) IGEMM #3', 'conv: IGEMM'),
    ('Convolution (NHWC, F32) DWConv #12', 'conv: DWConv'),
    ('Fully Connected (NC, F32) GEMM #1', 'Fully Connected GEMM'),
    ('Convert (NC, F32, QD8) #1', 'quantize'),
    ('Convert (NC, QS8, F32) #2', 'dequantize'),
    ('GELU (NC) #39', 'GELU'),
    ('native_call__to_dim_order_copy.out', 'native_call__to_dim_order_copy.out'),
])
def test_xnnpack_events_are_rows_without_their_precision_and_number(event, row):
    assert xnnpack_row(event) == row


@pytest.mark.core
def test_the_table_gives_each_rows_times_shares_and_speed_up():
    fp32, int8 = OpProfile('onnxruntime', 'fp32'), OpProfile('onnxruntime', 'int8')
    fp32.us.update({'conv: pointwise': 600.0, 'GELU': 400.0})
    fp32.nodes.update({'conv: pointwise': 3, 'GELU': 2})
    int8.us.update({'conv: pointwise': 200.0, 'GELU': 400.0, 'quantize': 200.0})
    int8.nodes.update({'conv: pointwise': 3, 'GELU': 1, 'quantize': 4})
    lines = format_pair(fp32, int8)
    assert lines[0] == ('onnxruntime: fp32 1.00 ms, int8 0.80 ms (1.25x), summed kernel times '
                        'per run')
    # no speed-up where the files differ in the row's nodes (one GELU of two left in int8)
    assert lines[4:] == ['| conv: pointwise | 3 / 3 | 600 (60%) | 200 (25%) | 3.00x |',
                         '| GELU | 2 / 1 | 400 (40%) | 400 (50%) |  |',
                         '| quantize | 0 / 4 | 0 (0%) | 200 (25%) |  |']


@pytest.mark.slow
def test_rapidnet_ti_is_profiled_in_every_runtime_every_conv_in_its_row(tmp_path, capsys):
    for package in ('onnxruntime', 'openvino', 'executorch'):
        pytest.importorskip(package)
    out = tmp_path / 'profile.md'
    # the threads this process has already: ExecuTorch's pool is set for the whole process
    threads = torch.get_num_threads()
    assert tool.main(['--input-size', '64', '64', '--runs', '2', '--threads', str(threads),
                      '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert text.strip() in printed
    assert text.startswith(f'RapidNet-Ti, deploy form, 1x3x64x64, {threads} threads, 2 runs, ')
    sections = text.split('\n\n')[1:]
    assert [s.split(':')[0] for s in sections[::2]] == ['onnxruntime', 'openvino', 'executorch']
    rows = [{line.split(' | ')[0][2:]: line.split(' | ')[1] for line in table.splitlines()[2:]}
            for table in sections[1::2]]
    for table in rows[:2]:
        # every convolution was found in the profile of both files, in its kind's row
        assert {r: n for r, n in table.items() if r.startswith('conv:')} == {
            r: f'{n} / {n}' for r, n in TI_CONVS.items()}
    assert rows[0]['GELU'] == '39 / 39' and rows[0]['quantize'].startswith('0 / ')
    # XNNPACK's own operators: the 41 pointwise convolutions and the classifier as fully
    # connected GEMMs, the 12 depthwise 3x3 as DWConv, the other 21 convolutions as IGEMM
    assert {r: rows[2][r] for r in ('Fully Connected GEMM', 'conv: DWConv', 'conv: IGEMM')} == {
        'Fully Connected GEMM': '42 / 42', 'conv: DWConv': '12 / 12', 'conv: IGEMM': '21 / 21'}


def test_bad_requests_are_one_line(tmp_path, capsys):
    assert tool.main([config_path('cls', 'rapidnet_ti_in1k.py'), '--peer', 'mobilenetv2_140']) \
        == 2
    assert capsys.readouterr().err == 'error: give a config or --peer, not both\n'
    assert tool.main(['--runs', '0']) == 2
    assert capsys.readouterr().err == 'error: --runs 0: give at least 1\n'
    assert tool.main([config_path('det', 'maskrcnn_rapidnet_s_coco.py'), '--runs', '1']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'is not a classification config' in err
