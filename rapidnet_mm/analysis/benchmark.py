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
peak, for the fraction of it each model reaches. The models themselves, and the published top-1
beside them, are :mod:`.subjects`.
"""
import contextlib
import multiprocessing
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.export_module import ExportError
from ..deploy.runtime import (FILE_RUNTIMES, INT8_RUNTIMES, RUNTIMES, RuntimeSetupError,
                              build_runtime)
from ..timing import Timing, summarize
from .flops import count_macs
from .subjects import Subject

GEMM_SIZE = 1024  # the peak: torch.mm of two GEMM_SIZE x GEMM_SIZE fp32 matrices
GEMM = '__gemm__'  # its key among the timed entries


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
