"""Latency (batch 1) and throughput (batch N) of RapidNet configs and their peers, training vs
deploy form.

Usage: python tools/benchmark.py [CONFIG ...] [--peers NAME ...|none] [--device cpu|cuda]
       [--batch-size N] [--input-size H W] [--amp] [--channels-last] [--compile]
       [--warmup W] [--runs R] [--threads T] [--out table.md] [--plot chart.png]

Without CONFIGs the four configs/cls/rapidnet_*_in1k.py are timed. Weights are random (speed does
not depend on them); the deploy form's outputs are compared with the training form's.
"""
import argparse
import os.path as osp
import sys
from typing import List

import torch

from rapidnet_mm.deploy.benchmark import (PEERS, RAPIDNET_ACCURACY, Settings, Subject,
                                          config_subject, make_input, max_relative_difference,
                                          measure, peer_subject)
from rapidnet_mm.deploy.model_io import build_model, load_model_config
from rapidnet_mm.deploy.cli import run_tool
from rapidnet_mm.runner import ConfigError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIGS = [osp.join(REPO, 'configs', 'cls', f'rapidnet_{a}_in1k.py')
                   for a in ('ti', 's', 'm', 'b')]
TARGET_SPEEDUP = 1.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument('--compile', action='store_true', help='torch.compile every form')
    parser.add_argument('--warmup', type=int, default=10, help='untimed runs first (10)')
    parser.add_argument('--runs', type=int, default=50,
                        help='timed runs at batch 1 (50); a fifth of them (at least 5) for the '
                        'throughput batch')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
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


def table(subjects: List[Subject], batch: int, settings: Settings, forms: List[str]) -> str:
    head = ['model', 'what', 'form', 'params (M)', 'latency b1 ms, median [IQR]']
    if batch:
        head.append(f'throughput b{batch} img/s')
    head += ['deploy speed-up b1', 'max rel. diff vs train', 'top-1 (source)']
    rows = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for s in subjects:
        for form in forms:
            t1 = s.results[1][form]
            cells = [s.name, s.what, form, f'{s.params[form] / 1e6:.2f}', t1.format()]
            if batch:
                tb = s.results[batch][form]
                cells.append(f'{batch / tb.median_ms * 1e3:.1f}')
            speedup = (s.results[1]['train'].median_ms / t1.median_ms
                       if form == 'deploy' and 'train' in s.results[1] else None)
            cells.append(f'{speedup:.2f}x' if speedup else '')
            cells.append(f'{s.max_rel_diff:.1e}' if form == 'deploy' and s.max_rel_diff
                         is not None else '')
            acc = s.accuracy
            cells.append(f'{acc.top1} ({acc.source})' if acc and form == forms[-1] else '')
            rows.append('| ' + ' | '.join(cells) + ' |')
    flags = (('AMP', settings.amp), ('channels_last', settings.channels_last),
             ('torch.compile', settings.compile))
    mode = ', '.join(k for k, v in flags if v) or 'fp32'
    return '\n'.join(rows) + (f'\n\n{settings.device}, {torch.get_num_threads()} threads, {mode}; '
                              f'{settings.warmup} warm-up + {settings.runs} timed runs at batch 1')


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
        settings = Settings(args.device, args.amp, args.channels_last, args.compile,
                            args.warmup, args.runs)
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
            subjects.append(subject)
        subjects += [peer_subject(p) for p in args.peers]
        for subject in subjects:
            subject.max_rel_diff = max_relative_difference(
                subject.forms['train'], subject.forms['deploy'],
                make_input(1, args.input_size, Settings()))
            subject.forms = {f: m for f, m in subject.forms.items() if f in args.forms}
        print(f'timing {len(subjects)} models ({", ".join(s.name for s in subjects)}), forms '
              f'{list(args.forms)}, batches {batches}', flush=True)
        measure(subjects, batches, args.input_size, settings,
                log=lambda m: print(m, flush=True))
        text = table(subjects, args.batch_size, settings, list(args.forms))
        print(text)
        if set(args.forms) == {'train', 'deploy'}:
            for s in subjects:
                if s.name.startswith('RapidNet'):
                    r = s.results[1]['train'].median_ms / s.results[1]['deploy'].median_ms
                    verdict = 'met' if r >= TARGET_SPEEDUP else 'not met'
                    print(f'{s.name}: deploy form {r:.2f}x the training form at batch 1 '
                          f'(target {TARGET_SPEEDUP}x: {verdict}), outputs equal to '
                          f'{s.max_rel_diff:.1e} of their scale')
        if args.out:
            with open(args.out, 'w') as f:
                f.write(text + '\n')
            print(f'wrote {args.out}')
        if args.plot:
            n = plot(subjects, args.plot, args.forms[-1])
            print(f'wrote {args.plot} ({n} models with a published top-1; others left out)')
    return run_tool(body, ValueError)


if __name__ == '__main__':
    sys.exit(main())
