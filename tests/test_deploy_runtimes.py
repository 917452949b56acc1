"""The file runtimes (onnxruntime, OpenVINO, ExecuTorch) behind tools/analysis_tools/benchmark.py,
their int8 forms, and its worker processes: outputs equal to the eager training form's, all
runtimes in one table, and clear refusals."""
import copy

import pytest
import torch
from deploy_helpers import config_path, perturb, rel_diff

from rapidnet_mm.config import build_model, load_model_config
from rapidnet_mm.analysis.benchmark import GEMM_SIZE, Settings, fastest_exact, measure, peak_macs
from rapidnet_mm.analysis.subjects import Subject, config_subject
from rapidnet_mm.deploy.runtime import FILE_RUNTIMES, RUNTIMES, RuntimeSetupError, build_runtime
from rapidnet_mm.models import RapidNet

pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

TINY_ARCH = dict(ir_blocks=(1, 1, 1, 0), mldc_blocks=(0, 0, 1, 1),
                 channels=(16, 24, 32, 48))


def ti_classifier() -> Subject:
    model = perturb(build_model(load_model_config(config_path('cls', 'rapidnet_ti_in1k.py'))))
    return config_subject('RapidNet-Ti', model)


def s_backbone() -> dict:
    train = perturb(RapidNet('s', out_indices=(0, 1, 2, 3))).eval()
    deploy = copy.deepcopy(train)
    deploy.switch_to_deploy()
    return dict(train=train, deploy=deploy)


# ExecuTorch's lowering takes tens of seconds per model on 2 cores
@pytest.mark.parametrize('runtime', [pytest.param(r, marks=pytest.mark.slow)
                                     if r == 'executorch' else r for r in FILE_RUNTIMES])
@pytest.mark.parametrize('build', [lambda: ti_classifier().forms, s_backbone],
                         ids=['ti_classifier', 's_backbone'])
def test_file_runtimes_equal_the_eager_training_form(runtime, build):
    forms = build()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = forms['train'].eval()(x)
        got = build_runtime(forms['deploy'].eval(), runtime, x)(x)
    ref, got = (ref, got) if isinstance(ref, tuple) else ((ref, ), (got, ))
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        assert g.shape == r.shape and g.dtype == torch.float32
        assert rel_diff(r, g) < 1e-5


def test_file_runtimes_refuse_training_mode_and_settings_they_cannot_take():
    model = RapidNet(TINY_ARCH).train()
    for runtime in FILE_RUNTIMES:
        with pytest.raises(RuntimeSetupError, match='needs an eval-mode module'):
            build_runtime(model, runtime, torch.zeros(1, 3, 64, 64))
    for bad in (dict(amp=True), dict(channels_last=True), dict(device='cuda')):
        with pytest.raises(RuntimeSetupError, match=r"runtimes \['onnxruntime'\] run an "
                           r'exported fp32 file \(ONNX, ExecuTorch\) on the CPU'):
            Settings(runtimes=('eager', 'onnxruntime'), **bad).check()
    with pytest.raises(RuntimeSetupError, match='--quantize times the int8 form of'):
        Settings(runtimes=('eager', 'torchscript'), quantize=True).check()
    with pytest.raises(RuntimeSetupError, match='int8 needs one of the runtimes'):
        build_runtime(RapidNet(TINY_ARCH).eval(), 'torchscript', torch.zeros(1, 3, 64, 64),
                      [torch.zeros(1, 3, 64, 64)])


def test_benchmark_onnxruntime_sessions_do_not_spin(monkeypatch):
    """Spinning session threads took the cores from the session that ran next (docs/benchmarks.md)."""
    from rapidnet_mm.deploy import onnx_export
    made = []

    def recording_session(path, *args, **kwargs):
        session = real_session(path, *args, **kwargs)
        made.append((session, real_session(path)))  # and onnxruntime's default, for contrast
        return session

    real_session = onnx_export.onnxruntime_session
    monkeypatch.setattr(onnx_export, 'onnxruntime_session', recording_session)
    x = torch.zeros(1, 3, 64, 64)
    build_runtime(RapidNet(TINY_ARCH, out_indices=(3, )).eval(), 'onnxruntime', x)(x)
    benchmark, default = (session.get_session_options() for session in made[0])
    assert benchmark.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert benchmark.intra_op_num_threads == torch.get_num_threads()
    # elsewhere (the exporters' checks) onnxruntime's default, which spins
    with pytest.raises(Exception, match='allow_spinning'):
        default.get_session_config_entry('session.intra_op.allow_spinning')


def tiny_subject(name: str, seed: int) -> Subject:
    # the convolutions' initial weights seeded too, so that every run quantizes the same network
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        train = perturb(RapidNet(TINY_ARCH, out_indices=(3, )), seed).eval()
    deploy = copy.deepcopy(train)
    deploy.switch_to_deploy()
    return Subject(name, 'backbone', dict(train=train, deploy=deploy), dict(train=1, deploy=1))


@pytest.mark.slow
def test_worker_processes_time_every_runtime_in_one_table():
    subjects = [tiny_subject('a', 0), tiny_subject('b', 1)]
    settings = Settings(runtimes=RUNTIMES, warmup=1, runs=2, threads=1)
    logs = []
    # the deploy form only, to keep inductor's compiles few; still compared with the eager
    # training form
    gemm = measure(subjects, ['deploy'], [1], (32, 32), settings, logs.append)
    labels = {'deploy' if r == 'eager' else f'deploy+{r}' for r in RUNTIMES}
    for s in subjects:
        assert set(s.results[1]) == labels and all(t.runs == 2 for t in s.results[1].values())
        assert set(s.diffs) == labels  # every entry checked against the eager training form
        assert all(d < 1e-5 for d in s.diffs.values())
        assert s.macs > 0 and fastest_exact(s) in labels
    assert gemm[1].runs == 2
    assert peak_macs(gemm[1]) == pytest.approx(GEMM_SIZE ** 3 / gemm[1].median_ms * 1e3)
    assert any(f'{len(RUNTIMES)} worker processes taking turns' in line for line in logs)
    assert any('b deploy+openvino: ready in' in line for line in logs)


@pytest.mark.slow
def test_int8_entries_sit_beside_fp32_in_the_table():
    """--quantize: an int8 deploy entry per int8 runtime, timed in the same rounds, compared
    with the eager training form like every entry (close, not equal)."""
    subjects = [tiny_subject('a', 0)]
    settings = Settings(runtimes=('eager', 'openvino', 'executorch'), warmup=1, runs=2,
                        threads=1, quantize=True)
    measure(subjects, ['deploy'], [1], (64, 64), settings, print)
    labels = {'deploy', 'deploy+openvino', 'deploy+executorch', 'deploy+openvino-int8',
              'deploy+executorch-int8'}
    assert set(subjects[0].results[1]) == labels == set(subjects[0].diffs)
    assert all(subjects[0].diffs[n] < 1e-5 for n in labels if not n.endswith('-int8'))
    int8_diffs = {n: d for n, d in subjects[0].diffs.items() if n.endswith('-int8')}
    assert all(1e-5 < d < 0.2 for d in int8_diffs.values()), int8_diffs
    assert fastest_exact(subjects[0]) in labels - {'deploy+openvino-int8',
                                                    'deploy+executorch-int8'}
