"""Latency and throughput of models in their training and deploy forms, and of the mobile
backbones RapidNet is compared with (the paper's and later ones, built by timm with random
weights).

Forms are timed interleaved (one run of each in turn, the order rotating) so that a machine shared
with other work slows all of them alike; medians and interquartile ranges are reported.

Each runtime runs in its own worker process (onnxruntime's, OpenVINO's and torch's thread pools
perturb each other when they share a process), and the workers take turns: in each round every
worker in turn runs each of its entries once while the others wait, so no two thread pools run
at the same time and load that comes and goes affects every runtime alike. A GEMM (``torch.mm``
of two square fp32 matrices, the same thread count) is timed in the same rounds as the machine's
peak, for the fraction of it each model reaches.
"""
import contextlib
import copy
import multiprocessing
import os
import os.path as osp
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.export_module import ExportError
from ..deploy.reparameterize import rapidnet_modules, reparameterize_model
from ..deploy.runtime import (FILE_RUNTIMES, INT8_RUNTIMES, RUNTIMES, RuntimeSetupError,
                              build_runtime)
from ..errors import InputError
from ..models import ARCH_SETTINGS, RapidNetClsHead
from ..timing import Timing, summarize
from .flops import count_macs

GEMM_SIZE = 1024  # the peak: torch.mm of two GEMM_SIZE x GEMM_SIZE fp32 matrices
GEMM = '__gemm__'  # its key among the timed entries


@dataclass(frozen=True)
class Accuracy:
    """An ImageNet-1K top-1 figure, the input resolution it was measured at, and where it is
    stated."""
    top1: float
    resolution: int  # square input side of the published figure
    source: str


# Top-1 accuracies as the models' own authors state them; None where we cannot cite one (the
# paper's figures for S, M and B are in neither the authors' README nor their Hub files).
RAPIDNET_ACCURACY: Dict[str, Accuracy] = {
    'ti': Accuracy(76.3, 224, 'RapidNet paper, abstract (distilled)'),
}
_REPVIT = 'RepViT official README (THU-MIG/RepViT), 300 epochs, distilled'
_FASTVIT = 'FastViT official README (apple/ml-fastvit), distilled'
_STARNET = 'StarNet official README (ma-xu/Rewrite-the-Stars, imagenet/)'
# The MobileNetV4 authors released no PyTorch weights; timm trained the ones it ships.
_MNV4 = 'timm model card results table (mobilenetv4_conv_*, weights trained by timm)'
PEERS: Dict[str, tuple] = {
    # timm name: (label, accuracy)
    'mobilenetv2_140': ('MobileNetV2x1.4', Accuracy(
        74.7, 224, 'MobileNetV2 paper (Sandler et al., CVPR 2018), as quoted in the RapidNet '
        'and EfficientFormer abstracts')),
    'mobilenetv4_conv_small': ('MobileNetV4-Conv-S', Accuracy(
        73.8, 224, f'{_MNV4}: e2400_r224_in1k at 224')),
    'mobilenetv4_conv_medium': ('MobileNetV4-Conv-M', Accuracy(
        79.9, 256, f'{_MNV4}: e500_r256_in1k at 256')),
    'repvit_m0_9': ('RepViT-M0.9', Accuracy(78.7, 224, _REPVIT)),
    'repvit_m1_1': ('RepViT-M1.1', Accuracy(80.7, 224, _REPVIT)),
    'efficientformer_l1': ('EfficientFormer-L1', Accuracy(
        79.2, 224, 'EfficientFormer paper abstract (Li et al., NeurIPS 2022), 300 epochs, '
        'distilled')),
    'efficientformerv2_s1': ('EfficientFormerV2-S1', Accuracy(
        79.0, 224, 'EfficientFormerV2 official README (snap-research/EfficientFormer), 300 '
        'epochs, distilled')),
    'fastvit_t8': ('FastViT-T8', Accuracy(77.2, 256, _FASTVIT)),
    'fastvit_t12': ('FastViT-T12', Accuracy(80.3, 256, _FASTVIT)),
    'fastvit_sa12': ('FastViT-SA12', Accuracy(81.9, 256, _FASTVIT)),
    'starnet_s3': ('StarNet-S3', Accuracy(77.4, 224, _STARNET)),
    'starnet_s4': ('StarNet-S4', Accuracy(78.8, 224, _STARNET)),
}


@dataclass
class Subject:
    """A model to time: a forward for each form, and what it computes."""
    name: str
    what: str  # 'classifier' or 'backbone+neck'
    forms: Dict[str, nn.Module]
    params: Dict[str, int]
    accuracy: Optional[Accuracy] = None
    macs: int = 0  # of the deploy form (the work the task needs) for one image
    diffs: Dict[str, float] = field(default_factory=dict)
    results: Dict[int, Dict[str, Timing]] = field(default_factory=dict)
    # batch -> label -> why the entry could not be built or run (its export failed, ...)
    failures: Dict[int, Dict[str, str]] = field(default_factory=dict)


class ClassifierForward(nn.Module):
    """``head(extract_feat(x))`` of an mmpretrain classifier (its eval output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.model.extract_feat(x))


class FeatureForward(nn.Module):
    """``extract_feat(x)`` (backbone and neck) of a detector or segmentor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.extract_feat(x)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def reparameterize_timm_parts(model: nn.Module) -> None:
    """Fold, in place, the timm networks that mmpretrain's wrappers hold (``TimmClassifier.model``,
    ``TIMMBackbone.timm_model``, e.g. the configs/repvit/ models) with timm's own
    reparameterisation, as :func:`peer_subject` does for a bare timm model."""
    from mmpretrain.models import TIMMBackbone, TimmClassifier
    from timm.utils.model import reparameterize_model as timm_reparameterize
    for module in list(model.modules()):
        if isinstance(module, TimmClassifier):
            timm_reparameterize(module.model, inplace=True)
        elif isinstance(module, TIMMBackbone):
            timm_reparameterize(module.timm_model, inplace=True)


def config_subject(name: str, model: nn.Module) -> Subject:
    """Training form (the eval-mode model as built) and deploy form (RapidNets folded, the
    RapidNet classification head folded, timm networks folded by timm) of an OpenMMLab model."""
    from mmpretrain.models import ImageClassifier, TimmClassifier
    model = model.eval()
    deploy = copy.deepcopy(model)
    if rapidnet_modules(deploy):
        reparameterize_model(deploy)
    reparameterize_timm_parts(deploy)
    if isinstance(model, TimmClassifier):  # the timm classifier itself is the eval forward
        return Subject(name, 'classifier', dict(train=model.model, deploy=deploy.model),
                       dict(train=n_params(model.model), deploy=n_params(deploy.model)))
    if isinstance(model, ImageClassifier) and model.with_head:
        if isinstance(deploy.head, RapidNetClsHead):
            deploy.head.reparameterize()
        train_fw, deploy_fw = ClassifierForward(model), ClassifierForward(deploy)
        what = 'classifier'
    else:
        train_fw, deploy_fw = FeatureForward(model), FeatureForward(deploy)
        what = 'backbone+neck'
    return Subject(name, what, dict(train=train_fw, deploy=deploy_fw),
                   dict(train=n_params(train_fw), deploy=n_params(deploy_fw)))


def fixed_input_size(timm_name: str) -> Optional[Tuple[int, int]]:
    """The only ``(H, W)`` a timm peer's network runs at (its attention biases are built for it,
    as EfficientFormer's), or None where any size runs."""
    from timm.models import get_arch_pretrained_cfgs
    cfg = next(iter(get_arch_pretrained_cfgs(timm_name).values()))
    return tuple(cfg.input_size[1:]) if cfg.fixed_input_size else None


def peer_subject(timm_name: str) -> Subject:
    """A timm peer with random weights; its deploy form is timm's reparameterisation."""
    import timm
    from timm.utils.model import reparameterize_model as timm_reparameterize
    if timm_name not in PEERS:
        raise InputError(f'unknown peer {timm_name!r}; choose from {sorted(PEERS)}')
    label, accuracy = PEERS[timm_name]
    model = timm.create_model(timm_name, pretrained=False).eval()
    deploy = timm_reparameterize(copy.deepcopy(model)).eval()
    return Subject(label, 'classifier', dict(train=model, deploy=deploy),
                   dict(train=n_params(model), deploy=n_params(deploy)), accuracy)


def flatten(outputs) -> List[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for o in outputs for t in flatten(o)]


@dataclass
class Settings:
    device: str = 'cpu'
    amp: bool = False
    channels_last: bool = False
    runtimes: Tuple[str, ...] = ('eager', )
    warmup: int = 10
    runs: int = 50
    threads: int = 0  # CPU threads of every runtime; 0: torch's default in this process
    quantize: bool = False  # also a static int8 deploy form under each INT8_RUNTIMES runtime

    def check(self) -> None:
        unknown = [r for r in self.runtimes if r not in RUNTIMES]
        if unknown or not self.runtimes:
            raise RuntimeSetupError(f'runtimes {list(self.runtimes)}: choose one or more of '
                                    f'{RUNTIMES}')
        if self.quantize and not any(r in INT8_RUNTIMES for r in self.runtimes):
            raise RuntimeSetupError(f'--quantize times the int8 form of {INT8_RUNTIMES}: add '
                                    'one of them to --runtime')
        if self.amp and 'torchscript' in self.runtimes:
            raise RuntimeSetupError('--amp with the torchscript runtime is not supported (a '
                                    'frozen trace would bake the autocast casts of one device '
                                    'in); time AMP with --runtime eager or inductor')
        files = [r for r in self.runtimes if r in FILE_RUNTIMES]
        if files and (self.amp or self.channels_last or self.device != 'cpu'):
            raise RuntimeSetupError(f'runtimes {files} run an exported fp32 file (ONNX, '
                                    'ExecuTorch) on the CPU in their own memory layout: drop '
                                    '--amp, --channels-last and --device cuda, or time them '
                                    'separately')


INT8 = '-int8'  # label suffix of the int8 form of a runtime


def label(form: str, runtime: str) -> str:
    """Table label of a form under a runtime: 'deploy', 'deploy+torchscript', ...,
    'deploy+executorch-int8'."""
    return form if runtime == 'eager' else f'{form}+{runtime}'


def entry_labels(settings: 'Settings', forms: Sequence[str]) -> List[str]:
    """Every entry timed per model: each form under each runtime, then with ``quantize`` the
    int8 deploy form under each runtime that has one."""
    labels = [label(f, r) for r in settings.runtimes for f in forms]
    if settings.quantize and 'deploy' in forms:
        labels += [label('deploy', r + INT8) for r in settings.runtimes if r in INT8_RUNTIMES]
    return labels


def calibration_batches(batch: int, input_size: Sequence[int]) -> List[torch.Tensor]:
    """The int8 calibration inputs of the benchmark: the packaged photographs' views (those of
    ``--quantize int8``'s default), normalised with the ImageNet mean and std that every model
    timed here was trained with, in batches of ``batch`` (cycling through the views)."""
    from ..deploy.normalization import InputNormalization
    from ..deploy.photos import PHOTOS, sample_images
    imagenet = InputNormalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), 'RGB')
    images = imagenet.apply(sample_images(input_size, 'RGB', tuple(PHOTOS)))
    count = max(1, len(images) // batch)
    order = torch.arange(count * batch) % len(images)
    return list(images[order].split(batch))


def prepare(module: nn.Module, settings: Settings, runtime: str,
            example: torch.Tensor) -> Callable[[torch.Tensor], object]:
    """``module`` on the settings' device and memory format, under ``runtime`` (built for inputs
    like ``example``; 'RUNTIME-int8': its static int8 form), called in inference mode (and
    autocast with ``settings.amp``)."""
    module = module.to(settings.device).eval()
    if settings.channels_last:
        module = module.to(memory_format=torch.channels_last)
    calibration = None
    if runtime.endswith(INT8):
        runtime = runtime[:-len(INT8)]
        calibration = calibration_batches(len(example), example.shape[2:])
    fn = build_runtime(module, runtime, example, calibration)
    device_type = 'cuda' if settings.device.startswith('cuda') else 'cpu'
    amp_dtype = torch.float16 if device_type == 'cuda' else torch.bfloat16

    def run(x: torch.Tensor):
        with torch.inference_mode(), (torch.autocast(device_type, dtype=amp_dtype)
                                      if settings.amp else contextlib.nullcontext()):
            return fn(x)
    return run


def make_input(batch: int, input_size: Sequence[int], settings: Settings) -> torch.Tensor:
    x = torch.randn(batch, 3, *input_size, generator=torch.Generator().manual_seed(0))
    x = x.to(settings.device)
    return x.to(memory_format=torch.channels_last) if settings.channels_last else x


def relative_difference(ref, got) -> float:
    """Largest |ref - got| over all outputs, relative to the largest |ref|."""
    return max((r.float() - g.float()).abs().max().item() / max(r.abs().max().item(), 1e-12)
               for r, g in zip(flatten(ref), flatten(got)))


def failure_reason(err: BaseException) -> str:
    """One line saying why an entry could not be built or run: the exception's type and the
    first line of its message."""
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0]}' if lines else type(err).__name__


def prepare_runners(subjects: Sequence[Subject], forms: Sequence[str], runtime: str,
                    x: torch.Tensor, settings: Settings, with_diffs: bool,
                    log: Callable[[str], None]
                    ) -> Tuple[Dict[Tuple[int, str], Callable[[], object]],
                               Dict[int, Dict[str, str]]]:
    """Every subject's ``forms`` built under ``runtime`` for input ``x``, keyed by
    ``(subject index, label)``; with ``with_diffs`` each output's difference from the eager
    training form goes into ``subject.diffs``.

    An entry that cannot be built or run (a peer whose export to the runtime fails, whatever
    the exporter raises) is left out and its reason returned, so that one model's failure in one
    runtime leaves every other entry of the run.

    Returns:
        The runners, and ``{subject index: {label: reason}}`` of the entries left out.
    """
    entries = [(form, runtime) for form in forms]
    if settings.quantize and runtime in INT8_RUNTIMES and 'deploy' in forms:
        entries.append(('deploy', runtime + INT8))
    runners, failures = {}, {}
    for i, s in enumerate(subjects):
        if with_diffs:
            ref = prepare(s.forms['train'], settings, 'eager', x)(x)
        for form, entry_runtime in entries:
            name = label(form, entry_runtime)
            start = time.perf_counter()
            try:
                runner = prepare(s.forms[form], settings, entry_runtime, x)
                out = runner(x)  # compiles (inductor) before the timed rounds
            except Exception as err:  # noqa: BLE001 - reported in the table, the run goes on
                failures.setdefault(i, {})[name] = failure_reason(err)
                log(f'  {s.name} {name}: not run: {failures[i][name]}')
                continue
            if entry_runtime != 'eager':
                log(f'  {s.name} {name}: ready in {time.perf_counter() - start:.1f} s')
            if with_diffs:
                s.diffs[name] = relative_difference(ref, out)
            runners[(i, name)] = lambda r=runner: r(x)
    return runners, failures


def gemm_runner(settings: Settings) -> Callable[[], object]:
    """The peak's GEMM: ``torch.mm`` of two fixed random square fp32 matrices."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(GEMM_SIZE, GEMM_SIZE, generator=g).to(settings.device) for _ in range(2))
    return lambda: torch.mm(a, b)


def _worker(conn, subjects_path: str, forms: Sequence[str], runtime: str, settings: Settings,
            with_gemm: bool) -> None:
    """A worker process: builds the subjects' forms under one runtime, then runs one timed round
    per request. Replies ('ok', payload, log lines) or ('error', kind, message)."""
    try:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        subjects = torch.load(subjects_path, weights_only=False)
        sync = (torch.cuda.synchronize if settings.device.startswith('cuda')
                else (lambda: None))
        runners: Dict = {}
        while True:
            request = conn.recv()
            lines: List[str] = []
            if request[0] == 'stop':
                return
            if request[0] == 'prepare':
                batch, input_size = request[1], request[2]
                x = make_input(batch, input_size, settings)
                runners, failures = prepare_runners(subjects, forms, runtime, x, settings,
                                                    batch == 1, lines.append)
                if with_gemm:
                    runners[GEMM] = gemm_runner(settings)
                payload = {i: (s.diffs if batch == 1 else {}, failures.get(i, {}))
                           for i, s in enumerate(subjects)}
            else:  # ('round', index): each entry once, the order rotating with the round
                keys = list(runners)
                shift = request[1] % len(keys) if keys else 0
                payload = {}
                for key in keys[shift:] + keys[:shift]:
                    start = time.perf_counter()
                    runners[key]()
                    sync()
                    payload[key] = (time.perf_counter() - start) * 1e3
            conn.send(('ok', payload, lines))
    except (RuntimeSetupError, ExportError) as err:
        conn.send(('error', 'setup', str(err)))
    except Exception:  # noqa: BLE001 - the parent reports it with the worker's traceback
        conn.send(('error', 'crash', traceback.format_exc()))


class RuntimeWorkers:
    """One worker process per runtime (spawned: a fresh interpreter, no inherited thread
    pools), driven in turns from this process. Use as a context manager."""

    def __init__(self, subjects: Sequence[Subject], forms: Sequence[str],
                 settings: Settings) -> None:
        self.subjects, self.forms, self.settings = subjects, forms, settings
        self.tmp = tempfile.TemporaryDirectory()
        self.procs: List = []
        self.conns: List = []

    def __enter__(self) -> 'RuntimeWorkers':
        path = os.path.join(self.tmp.name, 'subjects.pt')
        torch.save(list(self.subjects), path)
        ctx = multiprocessing.get_context('spawn')
        for n, runtime in enumerate(self.settings.runtimes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, daemon=True,
                               args=(child, path, list(self.forms), runtime, self.settings,
                                     n == 0))
            proc.start()
            self.procs.append(proc)
            self.conns.append(parent)
        return self

    def send(self, n: int, request: tuple) -> None:
        """Send ``request`` to worker ``n``."""
        try:
            self.conns[n].send(request)
        except OSError:  # a broken pipe: the worker is gone
            self._died(n)

    def ask(self, n: int, request: tuple, log: Callable[[str], None]):
        """Send ``request`` to worker ``n`` and wait for its reply."""
        self.send(n, request)
        return self.reply(n, log)

    def _died(self, n: int) -> None:
        self.procs[n].join(5)
        raise RuntimeError(f'the {self.settings.runtimes[n]} worker died (exit code '
                           f'{self.procs[n].exitcode})')

    def reply(self, n: int, log: Callable[[str], None]):
        """Worker ``n``'s reply to the request sent last (its log lines go to ``log``).

        Raises:
            RuntimeSetupError: the worker's runtime refused a model or setting.
            RuntimeError: the worker crashed (with its traceback) or died.
        """
        try:
            status, payload, *rest = self.conns[n].recv()
        except (EOFError, OSError):  # closed or reset: the worker is gone
            self._died(n)
        if status == 'error':
            if payload == 'setup':
                raise RuntimeSetupError(rest[0])
            raise RuntimeError(f'the {self.settings.runtimes[n]} worker failed:\n{rest[0]}')
        for line in rest[0]:
            log(line)
        return payload

    def __exit__(self, *exc) -> None:
        for conn, proc in zip(self.conns, self.procs):
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(('stop', ))
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        self.tmp.cleanup()


def measure(subjects: Sequence[Subject], forms: Sequence[str], batch_sizes: Sequence[int],
            input_size: Sequence[int], settings: Settings,
            log: Callable[[str], None] = print) -> Dict[int, Timing]:
    """Time ``forms`` of every subject under every runtime at each batch size, in place
    (``subject.results[batch][label]``; at batch 1 also ``subject.diffs[label]``, the output
    difference from the eager training form under the same settings, and ``subject.macs``). An
    entry that cannot be built or run goes to ``subject.failures[batch][label]`` instead (see
    :func:`prepare_runners`).

    Each runtime runs in its own worker process; rounds go to the workers in turn (the order
    rotating), and within a worker every model and form once (the order rotating), so that load
    from other processes that comes and goes during the run affects every entry alike.

    Returns:
        The GEMM's timing at each batch size (timed in the same rounds; see :func:`peak_macs`).
    """
    settings.check()
    for s in subjects:
        s.macs = count_macs(s.forms['deploy' if 'deploy' in s.forms else 'train'],
                            tuple(input_size))['total']
    gemm: Dict[int, Timing] = {}
    with RuntimeWorkers(subjects, forms, settings) as workers:
        n_workers = len(settings.runtimes)
        for batch in batch_sizes:
            # the workers build their runtimes at the same time (exports, traces, compiles)
            for n in range(n_workers):
                workers.send(n, ('prepare', batch, tuple(input_size)))
            for n in range(n_workers):
                for i, (diffs, failed) in workers.reply(n, log).items():
                    subjects[i].diffs.update(diffs)
                    if failed:
                        subjects[i].failures.setdefault(batch, {}).update(failed)
            runs = settings.runs if batch == 1 else max(5, settings.runs // 5)
            log(f'batch {batch}: {len(subjects) * len(entry_labels(settings, forms))} entries in '
                f'{n_workers} worker processes taking turns, {settings.warmup} warm-up and {runs} '
                'timed rounds ...')
            times: Dict = {}
            for r in range(settings.warmup + runs):
                shift = r % n_workers
                for n in list(range(n_workers))[shift:] + list(range(shift)):
                    for key, ms in workers.ask(n, ('round', r), log).items():
                        if r >= settings.warmup:
                            times.setdefault(key, []).append(ms)
            for key, t in times.items():
                if key == GEMM:
                    gemm[batch] = summarize(t)
                else:
                    subjects[key[0]].results.setdefault(batch, {})[key[1]] = summarize(t)
    return gemm


def peak_macs(gemm: Timing) -> float:
    """MACs per second of the GEMM at its median time (the machine's peak in this run)."""
    return GEMM_SIZE ** 3 / (gemm.median_ms / 1e3)


def fastest_exact(subject: Subject, rel_tol: float = 1e-4) -> Optional[str]:
    """Label of the subject's fastest deploy entry at batch 1 whose outputs equal the eager
    training form's within ``rel_tol``, or None."""
    exact = [n for n in subject.results.get(1, {}) if n.split('+')[0] == 'deploy'
             and not n.endswith(INT8) and subject.diffs.get(n, 1.) <= rel_tol]
    return min(exact, key=lambda n: subject.results[1][n].median_ms, default=None)


def arch_of(model) -> str:
    """The variant name ('ti', ...) of a model's RapidNet backbone, or '' for other models."""
    backbone = getattr(model, 'backbone', None)
    channels = getattr(backbone, 'channels', None)
    arch = getattr(backbone, 'arch', None) or {}  # empty: not a RapidNet
    counts = tuple(tuple(arch.get(k) or ()) for k in ('ir_blocks', 'mldc_blocks'))
    for name, s in ARCH_SETTINGS.items():
        if (tuple(s['channels']) == tuple(channels or ())
                and (tuple(s['ir_blocks']), tuple(s['mldc_blocks'])) == counts):
            return name
    return ''


def subject_for_config(config: str) -> Subject:
    """The :class:`Subject` of a config's model (random weights), named after its RapidNet variant
    ('RapidNet-Ti', ...) and given the paper's top-1 where one is published."""
    from ..config import build_model, load_model_config
    model = build_model(load_model_config(config))
    arch = arch_of(model)
    stem = osp.splitext(osp.basename(config))[0]
    name = f'RapidNet-{arch.upper() if arch != "ti" else "Ti"}' if arch else stem
    subject = config_subject(name, model)
    if subject.what == 'classifier' and arch in RAPIDNET_ACCURACY:
        subject.accuracy = RAPIDNET_ACCURACY[arch]
    elif arch and subject.what != 'classifier':  # tell a detector from a segmentor
        subject.name += f' ({stem})'
    return subject
