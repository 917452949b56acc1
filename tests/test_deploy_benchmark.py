"""tools/analysis_tools/benchmark.py (no speed is asserted: timings go in the docs)."""
import pytest
from benchmark_helpers import TinyNet, UntraceableNet, tiny_subject
from deploy_helpers import config_path, load_tool

from rapidnet_mm.analysis.benchmark import Settings, measure
from rapidnet_mm.analysis.subjects import PEERS, fixed_input_size
from rapidnet_mm.analysis.benchmark_report import format_table, summary_lines
from rapidnet_mm.deploy.cpu_features import cpu_features

tool = load_tool('analysis_tools/benchmark')


@pytest.mark.core
def test_peers_are_the_papers_and_2026s_mobile_backbones_with_cited_accuracies():
    from timm.models import get_arch_pretrained_cfgs
    assert set(PEERS) == {
        'mobilenetv2_140', 'mobilenetv4_conv_small', 'mobilenetv4_conv_medium', 'repvit_m0_9',
        'repvit_m1_1', 'efficientformer_l1', 'efficientformerv2_s1', 'fastvit_t8', 'fastvit_t12',
        'fastvit_sa12', 'starnet_s3', 'starnet_s4'}
    for name, (_, acc) in PEERS.items():
        assert acc.source and 60 < acc.top1 < 90
        # the published figure's resolution is that of timm's default weights for the name
        default_cfg = next(iter(get_arch_pretrained_cfgs(name).values()))
        assert default_cfg.input_size == (3, acc.resolution, acc.resolution), name
    assert len({label for label, _ in PEERS.values()}) == len(PEERS)
    fixed = {name: fixed_input_size(name) for name in PEERS}
    assert {n: size for n, size in fixed.items() if size} == {
        'efficientformer_l1': (224, 224), 'efficientformerv2_s1': (224, 224)}


def test_an_entry_that_fails_to_build_is_reported_and_the_run_goes_on():
    good = tiny_subject('Good', TinyNet())
    bad = tiny_subject('Bad', UntraceableNet())  # its deploy form cannot be traced
    settings = Settings(runtimes=('torchscript', ), warmup=0, runs=2, threads=1)
    logged = []
    gemm = measure([good, bad], ['train', 'deploy'], [1, 2], (16, 16), settings, logged.append)
    reason = 'RuntimeError: this operator cannot be exported'
    assert bad.failures == {1: {'deploy+torchscript': reason},
                            2: {'deploy+torchscript': reason}}
    assert set(bad.results[1]) == set(bad.results[2]) == {'train+torchscript'}
    assert good.failures == {}
    assert set(good.results[1]) == {'train+torchscript', 'deploy+torchscript'}
    assert good.diffs['deploy+torchscript'] < 1e-5
    assert f'  Bad deploy+torchscript: not run: {reason}' in logged
    rows = [r.split(' | ') for r in format_table(
        [good, bad], 2, settings, ['train', 'deploy'], gemm[1]).splitlines()
        if r.startswith('| Bad')]
    assert [r[2] for r in rows] == ['train+torchscript', 'deploy+torchscript']  # the row stays
    assert rows[1][4:6] == [f'not run: {reason}'] * 2  # batch 1 latency, batch 2 throughput
    assert all(c == '' for c in rows[1][6:-1]) and rows[0][4] != ''
    lines = summary_lines([good, bad], settings)
    assert f'Bad: deploy+torchscript not run at batch 1 ({reason})' in lines
    assert f'Bad: deploy+torchscript not run at batch 2 ({reason})' in lines


@pytest.mark.slow
def test_tool_times_both_forms_and_runtimes_and_writes_table_and_chart(tmp_path, capsys):
    table, chart = tmp_path / 'table.md', tmp_path / 'chart.png'
    argv = [config_path('cls', 'rapidnet_ti_in1k.py'), '--peers', 'fastvit_t8', '--runs', '2',
            '--warmup', '0', '--batch-size', '2', '--input-size', '64', '64', '--threads', '1',
            '--runtime', 'eager', 'torchscript', 'onnxruntime', 'openvino', '--out', str(table),
            '--plot', str(chart), '--plot-runtimes', 'eager', 'openvino']
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
    assert f'wrote {chart} (panels: eager, openvino)' in out


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
    (['--plot', 'a.png', '--forms', 'train'], '--plot draws the deploy form: add deploy'),
    (['--peers', 'efficientformer_l1', 'starnet_s3', 'efficientformerv2_s1', '--input-size', '64'],
     "peers ['efficientformer_l1', 'efficientformerv2_s1'] run only at their fixed input size "
     '(efficientformer_l1: 224x224, efficientformerv2_s1: 224x224), not 64x64'),
    (['--plot-runtimes', 'all'], '--plot-runtimes chooses the panels of --plot: add --plot'),
    (['--plot', 'a.png', '--plot-runtimes', 'openvino'],
     "--plot-runtimes ['openvino'] were not timed: choose from --runtime ['eager'] or \"all\""),
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
