"""Latency (batch 1) and throughput (batch N) of RapidNet configs and their peers, training vs
deploy form.

Usage: python tools/benchmark.py [CONFIG ...] [--peers NAME ...|none] [--device cpu|cuda]
       [--batch-size N] [--input-size H W] [--amp] [--channels-last]
       [--runtime eager|torchscript|inductor|onnxruntime|openvino ...] [--forms train deploy]
       [--warmup W] [--runs R] [--threads T] [--out table.md] [--plot chart.png]

Without CONFIGs the four configs/cls/rapidnet_*_in1k.py are timed. Weights are random (speed does
not depend on them); every form's outputs are compared with the eager training form's. Each
runtime runs in its own worker process and the workers take turns round by round (see
rapidnet_mm/deploy/benchmark.py); the table also gives the fraction of an fp32 GEMM's speed that
each entry reaches, the GEMM being timed in the same rounds.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List

import torch

from rapidnet_mm.deploy.benchmark import (GEMM_SIZE, PEERS, RAPIDNET_ACCURACY, Settings,
                                          Subject, Timing, config_subject, fastest_exact, label,
                                          measure, peak_macs, peer_subject)
from rapidnet_mm.deploy.model_io import build_model, load_model_config
from rapidnet_mm.deploy.cli import run_tool
from rapidnet_mm.deploy.runtime import RUNTIMES, RuntimeSetupError
from rapidnet_mm.runner import ConfigError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIGS = [osp.join(REPO, 'configs', 'cls', f'rapidnet_{a}_in1k.py')
                   for a in ('ti', 's', 'm', 'b')]
TARGET_SPEEDUP = 1.5
# Issue 13's goal: RapidNet-Ti's fastest exact CPU deploy path against the authors' model, which is
# the training form in eager PyTorch (the 'train' entry).
GOAL_SPEEDUP = 2.0
GOAL_MODEL = 'RapidNet-Ti'
GOAL_PEERS = ('MobileNetV2x1.4', 'FastViT-T8', 'RepViT-M0.9')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument('configs', nargs='*', help='model configs (default: the four '
                        'configs/cls/rapidnet_*_in1k.py)')
    parser.add_argument('--peers', nargs='*', default=list(PEERS),
                        help=f'timm peers to time (default all: {" ".join(PEERS)}); "none" for '
                        'none')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='throughput batch (default 16 on CPU, 256 on CUDA; 0 skips it)')
    parser.add_argument('--input-size', type=int, nargs=2, default=(224, 224),
                        metavar=('H', 'W'))
    parser.add_argument('--amp', action='store_true',
                        help='autocast (bfloat16 on CPU, float16 on CUDA)')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--runtime', nargs='+', default=['eager'], choices=RUNTIMES,
                        help='one or more runtimes to time every form under, each in its own '
                        'worker process (default eager): torchscript = traced, frozen and '
                        'optimize_for_inference; inductor = torch.compile with freezing; '
                        'onnxruntime and openvino (CPU, fp32) = the form exported to ONNX by '
                        'the exporter of tools/export_onnx.py')
    parser.add_argument('--warmup', type=int, default=10, help='untimed runs first (10)')
    parser.add_argument('--runs', type=int, default=50,
                        help='timed runs at batch 1 (50); a fifth of them (at least 5) for the '
                        'throughput batch')
    parser.add_argument('--threads', type=int, help='CPU threads of every runtime and the GEMM '
                        '(default: torch\'s default here)')
    parser.add_argument('--forms', nargs='+', default=['train', 'deploy'],
                        choices=['train', 'deploy'], help='forms to time (both by default)')
    parser.add_argument('--out', help='also write the table (markdown) to this file')
    parser.add_argument('--plot', help='write a top-1 vs batch-1 latency chart (png) here')
    return parser.parse_args(argv)


def check_args(args) -> None:
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'--device {args.device}: CUDA is not available here; use --device cpu')
    if not (args.device == 'cpu' or args.device.startswith('cuda')):
        raise ConfigError(f'--device must be cpu or cuda[:i], got {args.device!r}')
    if args.runs < 1 or args.warmup < 0:
        raise ConfigError('--runs must be >= 1 and --warmup >= 0')
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f'--threads {args.threads}: give at least 1')
    if args.peers == ['none']:
        args.peers = []
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        raise ConfigError(f'unknown peers {unknown}; choose from {list(PEERS)} or "none"')
    if not args.configs:
        args.configs = [c for c in DEFAULT_CONFIGS if osp.isfile(c)]
        if not args.configs:
            raise ConfigError('no configs given and configs/cls/rapidnet_*_in1k.py not found')
    if args.batch_size is None:
        args.batch_size = 256 if args.device.startswith('cuda') else 16
    if args.batch_size < 0:
        raise ConfigError('--batch-size must be >= 0')
    if args.plot and not args.plot.endswith('.png'):
        raise ConfigError('--plot writes a png: name it *.png')


def arch_of(model) -> str:
    backbone = getattr(model, 'backbone', None)
    channels = getattr(backbone, 'channels', None)
    from rapidnet_mm import ARCH_SETTINGS
    blocks = (getattr(backbone, 'arch', None) or {}).get('blocks')  # None: not a RapidNet
    for name, s in ARCH_SETTINGS.items():
        if tuple(s['channels']) == tuple(channels or ()) and tuple(s['blocks']) == blocks:
            return name
    return ''


def table(subjects: List[Subject], batch: int, settings: Settings, forms: List[str],
          gemm: Timing) -> str:
    head = ['model', 'what', 'form', 'params (M)', 'latency b1 ms, median [IQR]']
    if batch:
        head.append(f'throughput b{batch} img/s')
    head += ['speed-up b1 vs train', 'max rel. diff vs train', 'b1 % of GEMM peak',
             'top-1 (source)']
    peak = peak_macs(gemm)
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    labels = [label(f, r) for r in settings.runtimes for f in forms]
    for s in subjects:
        reference = s.results[1].get('train')
        for name in labels:
            form = name.split('+')[0]
            t1 = s.results[1][name]
            cells = [s.name, s.what, name, f'{s.params[form] / 1e6:.2f}', t1.format()]
            if batch:
                cells.append(f'{batch / s.results[batch][name].median_ms * 1e3:.1f}')
            cells.append(f'{reference.median_ms / t1.median_ms:.2f}x'
                         if reference and name != 'train' else '')
            cells.append(f'{s.diffs[name]:.1e}' if name != 'train' else '')
            cells.append(f'{100 * s.macs / (t1.median_ms / 1e3) / peak:.1f}')
            acc = s.accuracy
            cells.append(f'{acc.top1} ({acc.source})' if acc and name == labels[-1] else '')
            rows.append('| ' + ' | '.join(cells) + ' |')
    flags = (('AMP', settings.amp), ('channels_last', settings.channels_last))
    mode = ', '.join(k for k, v in flags if v) or 'fp32'
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    return '\n'.join(rows) + (
        f'\n\n{settings.device}, {settings.threads} threads, {mode}; {settings.warmup} warm-up + '
        f'{settings.runs} timed rounds at batch 1, each runtime in its own worker process, the '
        'workers taking turns; speed-ups relative to the eager training form. GEMM peak: '
        f'torch.mm of two {GEMM_SIZE}x{GEMM_SIZE} fp32 matrices, {settings.threads} threads, '
        f'timed in the same rounds: {gemm.median_ms:.2f} ms = {peak / 1e9:.1f} GMAC/s; % of peak '
        '= the deploy form\'s MACs (tools/get_flops.py\'s count) per second at the median '
        f'latency / that. Load average (1, 5, 15 min) at the end: {load}')


def verdicts(subjects: List[Subject], settings: Settings) -> List[str]:
    """For each RapidNet: each deploy runtime's speed-up over the eager training form (the
    issue's target) and what reparameterisation alone gives under that runtime."""
    lines = []
    for s in subjects:
        res = s.results[1]
        if not s.name.startswith('RapidNet') or 'train' not in res:
            continue
        for runtime in settings.runtimes:
            deploy, train = label('deploy', runtime), label('train', runtime)
            if deploy not in res:
                continue
            r = res['train'].median_ms / res[deploy].median_ms
            verdict = 'met' if r >= TARGET_SPEEDUP else 'not met'
            line = (f'{s.name}: deploy form ({runtime}) {r:.2f}x the eager training form at '
                    f'batch 1 (target {TARGET_SPEEDUP}x: {verdict}), outputs equal to '
                    f'{s.diffs[deploy]:.1e} of their scale')
            if runtime != 'eager' and train in res:
                line += (f'; reparameterisation alone under {runtime}: '
                         f'{res[train].median_ms / res[deploy].median_ms:.2f}x')
            lines.append(line)
    return lines


def goal(subjects: List[Subject]) -> List[str]:
    """Issue 13's goal, measured: RapidNet-Ti's fastest exact deploy entry against the authors'
    model (eager training form) in this run, and where RapidNet stands against the peers in
    each runtime (deploy forms at batch 1, fastest first)."""
    lines = []
    ti = next((s for s in subjects if s.name == GOAL_MODEL), None)
    best = fastest_exact(ti) if ti is not None else None
    if best is not None and 'train' in ti.results[1]:
        res = ti.results[1]
        r = res['train'].median_ms / res[best].median_ms
        lines.append(f'goal: {GOAL_MODEL}\'s fastest exact deploy path, {best} '
                     f'{res[best].median_ms:.2f} ms, is {r:.2f}x the authors\' model (eager '
                     f'training form, {res["train"].median_ms:.2f} ms): {GOAL_SPEEDUP}x '
                     + ('met' if r >= GOAL_SPEEDUP else 'not met'))
    runtimes: Dict[str, List] = {}
    for s in subjects:
        for name, t in s.results.get(1, {}).items():
            if name.split('+')[0] == 'deploy':
                runtimes.setdefault(name, []).append((t.median_ms, s.name))
    for name, entries in runtimes.items():
        names = {n for _, n in entries}
        if not any(n.startswith('RapidNet') for n in names) or not names & set(GOAL_PEERS):
            continue
        lines.append(f'{name}, batch 1, fastest first: '
                     + ', '.join(f'{n} {ms:.2f} ms' for ms, n in sorted(entries)))
    return lines


def plot(subjects: List[Subject], path: str, form: str) -> int:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    points = [(s.results[1][form].median_ms, s.accuracy.top1, s.name) for s in subjects
              if s.accuracy is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    for ms, top1, name in points:
        ax.scatter(ms, top1, color='tab:red' if name.startswith('RapidNet') else 'tab:blue')
        ax.annotate(name, (ms, top1), textcoords='offset points', xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f'latency, batch 1, {form} form (ms, this machine)')
    ax.set_ylabel('ImageNet-1K top-1 (%, as published)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return len(points)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        check_args(args)
        if args.threads:
            torch.set_num_threads(args.threads)
        settings = Settings(args.device, args.amp, args.channels_last, tuple(args.runtime),
                            args.warmup, args.runs, args.threads or torch.get_num_threads())
        settings.check()
        batches = [1] + ([args.batch_size] if args.batch_size else [])
        subjects = []
        for config in args.configs:
            cfg = load_model_config(config, None)
            model = build_model(cfg)
            arch = arch_of(model)
            name = f'RapidNet-{arch.upper() if arch != "ti" else "Ti"}' if arch else osp.basename(
                config)
            subject = config_subject(name, model)
            if subject.what == 'classifier' and arch in RAPIDNET_ACCURACY:
                subject.accuracy = RAPIDNET_ACCURACY[arch]
            elif arch and subject.what != 'classifier':  # tell a detector from a segmentor
                subject.name += f' ({osp.splitext(osp.basename(config))[0]})'
            subjects.append(subject)
        subjects += [peer_subject(p) for p in args.peers]
        print(f'timing {len(subjects)} models ({", ".join(s.name for s in subjects)}), forms '
              f'{list(args.forms)}, runtimes {list(args.runtime)}, batches {batches}', flush=True)
        gemm = measure(subjects, list(args.forms), batches, args.input_size, settings,
                       log=lambda m: print(m, flush=True))
        text = table(subjects, args.batch_size, settings, list(args.forms), gemm[1])
        print(text)
        summary = verdicts(subjects, settings) + goal(subjects)
        for line in summary:
            print(line)
        if args.out:
            with open(args.out, 'w') as f:
                f.write('\n'.join([text, ''] + summary) + '\n')
            print(f'wrote {args.out}')
        if args.plot:
            n = plot(subjects, args.plot, label(args.forms[-1], args.runtime[-1]))
            print(f'wrote {args.plot} ({n} models with a published top-1; others left out)')
    return run_tool(body, ValueError, RuntimeSetupError)


if __name__ == '__main__':
    sys.exit(main())
