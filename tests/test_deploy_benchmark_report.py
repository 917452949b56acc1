"""The benchmark's report on synthetic timings: RapidNet-Ti's rank against its peers, and the
accuracy-latency chart (no model is timed here)."""
import pytest
from benchmark_helpers import timed_subject

from rapidnet_mm.analysis.benchmark import Settings
from rapidnet_mm.analysis.benchmark_report import (default_plot_runtime, plot_accuracy_latency,
                                                   rank_lines, ti_comparison_lines)
from rapidnet_mm.errors import InputError

ORT, ORT8 = 'deploy+onnxruntime', 'deploy+onnxruntime-int8'
OV, OV8 = 'deploy+openvino', 'deploy+openvino-int8'


def ranked_run():
    ti = timed_subject('RapidNet-Ti', {'deploy': 20.0, ORT: 8.42, ORT8: 4.0, OV: 6.0}, 76.3)
    v2 = timed_subject('MobileNetV2x1.4', {'deploy': 40.0, ORT: 8.33, ORT8: 5.0, OV: 5.0}, 74.7)
    v4 = timed_subject('MobileNetV4-Conv-S', {'deploy': 10.0, ORT: 3.0, ORT8: 2.0}, 73.8,
                       failures={OV: 'ExportError: no OpenVINO'})
    other = timed_subject('FastViT-T8', {'deploy': 1.0, ORT: 1.0}, 77.2)  # not ranked against
    return [ti, v2, v4, other]


def test_ti_is_ranked_against_mobilenetv2_and_v4_in_each_deploy_entry():
    assert rank_lines(ranked_run()[0], ranked_run()) == [
        'RapidNet-Ti rank in deploy, batch 1: 2 of 3 (MobileNetV4-Conv-S 10.00 ms, '
        'RapidNet-Ti 20.00 ms, MobileNetV2x1.4 40.00 ms); 100.0% slower than MobileNetV4-Conv-S',
        'RapidNet-Ti rank in deploy+onnxruntime, batch 1: 3 of 3 (MobileNetV4-Conv-S 3.00 ms, '
        'MobileNetV2x1.4 8.33 ms, RapidNet-Ti 8.42 ms); 180.7% slower than MobileNetV4-Conv-S',
        'RapidNet-Ti rank in deploy+onnxruntime-int8, batch 1: 2 of 3 (MobileNetV4-Conv-S '
        '2.00 ms, RapidNet-Ti 4.00 ms, MobileNetV2x1.4 5.00 ms); 100.0% slower than '
        'MobileNetV4-Conv-S',
        'RapidNet-Ti rank in deploy+openvino, batch 1: 2 of 2 (MobileNetV2x1.4 5.00 ms, '
        'RapidNet-Ti 6.00 ms); 20.0% slower than MobileNetV2x1.4; not ranked: '
        'MobileNetV4-Conv-S: ExportError: no OpenVINO',
    ]


def test_ti_first_has_no_gap_and_the_ranks_close_the_comparison_lines():
    run = ranked_run()
    run[0].results[1][OV] = run[0].results[1][ORT8]  # 4.00 ms: ahead of MobileNetV2x1.4
    lines = ti_comparison_lines(run)
    assert lines[0] == 'RapidNet-Ti: int8 against fp32 at batch 1: deploy+onnxruntime 2.10x'
    assert lines[-1] == ('RapidNet-Ti rank in deploy+openvino, batch 1: 1 of 2 (RapidNet-Ti '
                         '4.00 ms, MobileNetV2x1.4 5.00 ms); not ranked: MobileNetV4-Conv-S: '
                         'ExportError: no OpenVINO')
    assert ti_comparison_lines(run[1:]) == []  # no RapidNet-Ti, nothing said


def test_default_panel_is_the_fastest_exact_runtime_of_the_first_rapidnet():
    run = ranked_run()
    assert default_plot_runtime(run) == 'openvino'  # int8 (4.0 ms) is not exact
    run[0].diffs[OV] = 1e-3  # no longer exact
    assert default_plot_runtime(run) == 'onnxruntime'
    with pytest.raises(InputError, match='--plot-runtimes'):
        default_plot_runtime(run[1:])


def scatter_points(ax):
    """(x, y, filled) of every scatter marker of a panel."""
    points = []
    for c in ax.collections:
        faces = c.get_facecolors()  # empty for hollow markers
        filled = len(faces) > 0 and faces[:, 3].max() > 0
        points += [(x, y, filled) for x, y in c.get_offsets()]
    return sorted(points)


def test_chart_has_a_panel_per_runtime_fp32_and_int8_markers_and_a_rapidnet_line(tmp_path):
    ti = timed_subject('RapidNet-Ti', {ORT: 8.0, ORT8: 6.0, OV: 6.0, OV8: 4.5}, 76.3)
    s = timed_subject('RapidNet-S', {ORT: 12.0, ORT8: 10.0, OV: 9.0, OV8: 7.0}, 78.0)
    b = timed_subject('RapidNet-B', {ORT: 30.0, ORT8: 20.0, OV: 22.0, OV8: 15.0})  # no top-1
    v2 = timed_subject('MobileNetV2x1.4', {ORT: 7.0, ORT8: 4.0, OV: 5.0, OV8: 3.0}, 74.7)
    v4 = timed_subject('MobileNetV4-Conv-S', {ORT: 3.0}, 73.8, failures={
        ORT8: 'RuntimeError: x', OV: 'RuntimeError: y', OV8: 'RuntimeError: y'})
    settings = Settings(runtimes=('onnxruntime', 'openvino'), quantize=True, threads=2)
    path = tmp_path / 'chart.png'
    fig = plot_accuracy_latency([ti, s, b, v2, v4], str(path), ['onnxruntime', 'openvino'],
                                settings, (224, 224), 'cpu: TestCPU (AVX2)', '2026-12-07')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert [ax.get_title() for ax in fig.axes] == ['onnxruntime', 'openvino']
    ort, ov = fig.axes
    assert scatter_points(ort) == [(3.0, 73.8, True), (4.0, 74.7, False), (6.0, 76.3, False),
                                   (7.0, 74.7, True), (8.0, 76.3, True), (10.0, 78.0, False),
                                   (12.0, 78.0, True)]
    assert scatter_points(ov) == [(3.0, 74.7, False), (4.5, 76.3, False), (5.0, 74.7, True),
                                  (6.0, 76.3, True), (7.0, 78.0, False), (9.0, 78.0, True)]
    # the RapidNets with a top-1 joined, fp32 solid and int8 dashed; each model's int8 marker
    # joined to its fp32 one, dotted
    assert [(ln.get_linestyle(), list(ln.get_xdata()), list(ln.get_ydata()))
            for ln in ort.lines] == [('-', [8.0, 12.0], [76.3, 78.0]),
                                     ('--', [6.0, 10.0], [76.3, 78.0]),
                                     (':', [6.0, 8.0], [76.3, 76.3]),
                                     (':', [10.0, 12.0], [78.0, 78.0]),
                                     (':', [4.0, 7.0], [74.7, 74.7])]
    assert len(ov.lines) == 2 + 3
    # one name per model, at its fp32 marker
    assert sorted((t.get_text(), t.xy) for t in ort.texts) == [
        ('MobileNetV2x1.4', (7.0, 74.7)), ('MobileNetV4-Conv-S', (3.0, 73.8)),
        ('RapidNet-S', (12.0, 78.0)), ('RapidNet-Ti', (8.0, 76.3))]
    legend = [t.get_text() for t in ort.get_legend().get_texts()]
    assert legend == ['fp32', 'int8', 'RapidNet', 'peers']
    assert fig._suptitle.get_text() == 'cpu: TestCPU (AVX2)\n2 threads, 2026-12-07'
    caption = ' '.join(' '.join(t.get_text() for t in fig.texts).split())
    assert 'CPU latencies' in caption and "iPhone 13 mini's Neural Engine" in caption
    assert 'Left out, no published top-1: RapidNet-B.' in caption
    assert ('Not run: MobileNetV4-Conv-S deploy+onnxruntime-int8, MobileNetV4-Conv-S '
            'deploy+openvino, MobileNetV4-Conv-S deploy+openvino-int8.' in caption)
    import matplotlib.pyplot as plt  # the chart chose its backend
    plt.close(fig)
