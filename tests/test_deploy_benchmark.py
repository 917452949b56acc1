"""tools/analysis_tools/benchmark.py (no speed is asserted: timings go in the docs)."""
import pytest
from deploy_helpers import config_path, load_tool

from rapidnet_mm.analysis.benchmark import PEERS
from rapidnet_mm.deploy.cpu_features import cpu_features

tool = load_tool('analysis_tools/benchmark')


def test_peers_are_the_papers_comparisons_with_cited_accuracies():
    assert set(PEERS) == {'mobilenetv2_140', 'repvit_m0_9', 'repvit_m1_1', 'efficientformer_l1',
                          'fastvit_t8', 'fastvit_sa12'}
    assert all(acc.source for _, acc in PEERS.values())


@pytest.mark.slow
def test_tool_times_both_forms_and_runtimes_and_writes_table_and_chart(tmp_path, capsys):
    table, chart = tmp_path / 'table.md', tmp_path / 'chart.png'
    argv = [config_path('cls', 'rapidnet_ti_in1k.py'), '--peers', 'fastvit_t8', '--runs', '2',
            '--warmup', '0', '--batch-size', '2', '--input-size', '64', '64', '--threads', '1',
            '--runtime', 'eager', 'torchscript', 'onnxruntime', 'openvino', '--out', str(table),
            '--plot', str(chart)]
    assert tool.main(argv) == 0
    out = capsys.readouterr().out
    rows = [r.split(' | ') for r in table.read_text().splitlines()
            if r.startswith('| RapidNet-Ti') or r.startswith('| FastViT-T8')]
    labels = ['train', 'deploy', 'train+torchscript', 'deploy+torchscript', 'train+onnxruntime',
              'deploy+onnxruntime', 'train+openvino', 'deploy+openvino']
    assert [r[2] for r in rows] == labels * 2  # two models x two forms x four runtimes
    assert rows[0][3] == '6.63'  # the training-form classifier: 6,627,840 parameters
    assert rows[1][3] == '6.07'  # folded: BatchNorms, layer scales and the second classifier
    assert rows[0][6] == '' and all(r[6].endswith('x') for r in rows[1:8])  # speed-ups
    assert all(float(r[7]) < 1e-5 for r in rows[1:8])  # every entry equals the training form
    assert all(float(r[8]) > 0 for r in rows)  # % of the GEMM peak
    assert '76.3' in rows[7][9] and '77.2' in rows[15][9]
    assert 'GEMM peak: torch.mm of two 1024x1024 fp32 matrices, 1 threads' in out
    assert f'\n\ncpu: {cpu_features().describe()}, 1 threads, fp32;' in out
    assert 'RapidNet-Ti: deploy form (eager)' in out and 'the eager training form' in out
    assert 'RapidNet-Ti: deploy form (openvino)' in out
    assert 'reparameterisation alone under onnxruntime' in out
    assert 'target' not in out and 'goal' not in out  # facts only, no internal targets
    for runtime in ('deploy', 'deploy+onnxruntime', 'deploy+openvino'):
        assert f'{runtime}, batch 1, fastest first: ' in out
    assert chart.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_tool_refuses_amp_with_torchscript(capsys):
    argv = ['--peers', 'none', '--amp', '--runtime', 'torchscript']
    assert tool.main(argv) == 2
    assert '--amp with the torchscript runtime is not supported' in capsys.readouterr().err


@pytest.mark.parametrize('argv,message', [
    (['--runtime', 'onnxruntime', '--amp'], "runtimes ['onnxruntime'] run an exported fp32"),
    (['--runtime', 'openvino', '--channels-last'], 'drop --amp, --channels-last'),
    (['--threads', '0'], '--threads 0: give at least 1'),
    (['--quantize'], "--quantize times the int8 form of ('onnxruntime', 'openvino', "
                     "'executorch'): add one of them to --runtime"),
])
def test_tool_refuses_bad_options_with_one_line(capsys, argv, message):
    assert tool.main(['--peers', 'none'] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and message in err and '\n' not in err


def test_tool_refuses_cuda_without_gpu_and_unknown_peer(capsys):
    import torch
    if not torch.cuda.is_available():
        assert tool.main(['--device', 'cuda', '--peers', 'none']) == 2
        assert 'CUDA is not available' in capsys.readouterr().err
    assert tool.main(['--peers', 'resnet50']) == 2
    assert "unknown peers ['resnet50']" in capsys.readouterr().err


@pytest.mark.slow
def test_tool_times_detector_and_segmentor_features_under_torchscript(tmp_path):
    table = tmp_path / 'table.md'
    argv = [config_path('det', 'maskrcnn_rapidnet_ti_coco.py'),
            config_path('seg', 'fpn_rapidnet_ti_ade20k.py'), '--peers', 'none', '--runs', '1',
            '--warmup', '0', '--batch-size', '0', '--input-size', '64', '64', '--threads', '1',
            '--runtime', 'eager', 'torchscript', '--out', str(table)]
    assert tool.main(argv) == 0
    rows = [r.split(' | ') for r in table.read_text().splitlines() if r.startswith('| RapidNet')]
    names = ['| RapidNet-Ti (maskrcnn_rapidnet_ti_coco)'] * 4 + [
        '| RapidNet-Ti (fpn_rapidnet_ti_ade20k)'] * 4
    assert [r[0] for r in rows] == names
    assert {r[1] for r in rows} == {'backbone+neck'}
    # backbone + FPN outputs of every form and runtime equal the eager training form's
    assert all(float(r[6]) < 1e-5 for r in rows if r[2] != 'train')
