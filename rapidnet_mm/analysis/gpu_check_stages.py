"""The stages of the GPU check (:mod:`rapidnet_mm.analysis.gpu_check`), each a function of the
:class:`~rapidnet_mm.analysis.gpu_check_plan.Context` returning its result: the environment, the
CUDA-vs-CPU comparisons (mmcv's ops, the backbones), training through ``tools/train.py`` on the
configs :mod:`~rapidnet_mm.analysis.gpu_check_configs` rewrites, and inference throughput."""
import json
import math
import os
import os.path as osp
import platform
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List

from rapidnet_mm.config import config_file, shipped_file

from .gpu_check_configs import TRAIN_RUNS, make_cpu_runnable, norm_type
from .gpu_check_plan import ARCHS, CheckFailed, Context, log

# CUDA output vs CPU output of an eval-mode backbone in fp32 with TF32 off: largest absolute
# difference over all outputs, relative to the largest |CPU output| (different kernels sum in a
# different order; 1e-4 leaves a margin of ~10x over fp32 rounding through ~60 layers).
BACKBONE_RTOL = 1e-4
ROI_ALIGN_ATOL = 1e-5       # forward: the same bilinear samples averaged in the same order
ROI_ALIGN_GRAD_ATOL = 1e-4  # backward: CUDA accumulates with atomicAdd in no fixed order


def stage_env(ctx: 'Context') -> dict:
    import importlib
    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__,
                torch_cuda=torch.version.cuda, cpu_count=os.cpu_count(),
                cuda_available=torch.cuda.is_available())
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'timm'):
        info[name] = importlib.import_module(name).__version__
    from mmcv.ops import get_compiling_cuda_version
    info['mmcv_ops_cuda'] = get_compiling_cuda_version()
    if ctx.rehearsal:
        info['device'] = 'cpu'
        return info
    info['device'] = torch.cuda.get_device_name(0)
    info['gpu_memory_gib'] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    info['cudnn'] = torch.backends.cudnn.version()
    if info['mmcv_ops_cuda'] != torch.version.cuda:
        raise CheckFailed(f"mmcv's ops were compiled with CUDA {info['mmcv_ops_cuda']!r}, torch "
                          f'has {torch.version.cuda}: rebuild mmcv with CUDA '
                          '(FORCE_CUDA=1 bash tools/setup/setup_env.sh, docs/install.md)', info)
    return info


def compare_ops(device: str = 'cuda') -> dict:
    """mmcv's RoIAlign (forward and input gradient) and NMS on ``device`` against CPU."""
    import torch
    from mmcv.ops import nms, roi_align
    g = torch.Generator().manual_seed(0)
    # features at stride 4 of a 304x200 image; 300 boxes of 4-64 px
    feats = torch.randn(2, 64, 50, 76, generator=g)
    xy = torch.rand(300, 2, generator=g) * torch.tensor([280., 180.])
    wh = torch.rand(300, 2, generator=g) * 60 + 4
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float(), xy, xy + wh], dim=1)
    weights = torch.randn(300, 64, 7, 7, generator=g)

    def run_roi_align(dev: str):
        x = feats.to(dev).requires_grad_()
        out = roi_align(x, rois.to(dev), (7, 7), 0.25, 2, 'avg', True)
        (out * weights.to(dev)).sum().backward()
        return out.detach().cpu(), x.grad.cpu()

    out_cpu, grad_cpu = run_roi_align('cpu')
    out_dev, grad_dev = run_roi_align(device)
    boxes_xy = torch.rand(2000, 2, generator=g) * 500
    boxes = torch.cat([boxes_xy, boxes_xy + torch.rand(2000, 2, generator=g) * 100 + 1], dim=1)
    scores = torch.rand(2000, generator=g)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_dev = nms(boxes.to(device), scores.to(device), 0.5)
    return dict(
        roi_align_forward_max_abs_diff=(out_cpu - out_dev).abs().max().item(),
        roi_align_forward_atol=ROI_ALIGN_ATOL,
        roi_align_grad_max_abs_diff=(grad_cpu - grad_dev).abs().max().item(),
        roi_align_grad_atol=ROI_ALIGN_GRAD_ATOL,
        nms_kept_cpu=len(keep_cpu), nms_kept_device=len(keep_dev),
        nms_equal=torch.equal(keep_cpu, keep_dev.cpu()))


def stage_ops(ctx: 'Context') -> dict:
    result = compare_ops('cuda')
    problems = []
    if not result['roi_align_forward_max_abs_diff'] <= ROI_ALIGN_ATOL:
        problems.append('RoIAlign forward differs')
    if not result['roi_align_grad_max_abs_diff'] <= ROI_ALIGN_GRAD_ATOL:
        problems.append('RoIAlign gradient differs')
    if not result['nms_equal']:
        problems.append('NMS keeps other boxes')
    if problems:
        raise CheckFailed('; '.join(problems) + ' on CUDA than on CPU', result)
    return result


def compare_backbones(device: str = 'cuda', batch: int = 2, archs=ARCHS) -> Dict[str, float]:
    """Each eval-mode RapidNet's outputs on ``device`` against CPU, in fp32 with TF32 off: the
    largest difference relative to the largest CPU output, by arch."""
    import torch
    from rapidnet_mm import RapidNet
    from rapidnet_mm.analysis.benchmark import relative_difference
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    diffs = {}
    for arch in archs:
        torch.manual_seed(0)
        model = RapidNet(arch=arch, out_indices=(0, 1, 2, 3)).eval()
        with torch.no_grad():
            ref = model(x)
            got = model.to(device)(x.to(device))
        diffs[arch] = relative_difference(ref, [t.cpu() for t in got])
    return diffs


def stage_backbone(ctx: 'Context') -> dict:
    result = dict(rtol=BACKBONE_RTOL, input=f'{ctx.plan.backbone_batch}x3x224x224',
                  diffs=compare_backbones('cuda', ctx.plan.backbone_batch))
    bad = [a for a, d in result['diffs'].items() if not d <= BACKBONE_RTOL]
    if bad:
        raise CheckFailed(f'RapidNet {bad}: CUDA output differs from CPU by more than '
                          f'{BACKBONE_RTOL} of its scale', result)
    return result


def stage_infer(ctx: 'Context') -> dict:
    import torch
    from rapidnet_mm.analysis.benchmark import Settings, make_input, measure, prepare
    from rapidnet_mm.analysis.subjects import PEERS, config_subject, peer_subject
    from rapidnet_mm.config import build_model, load_model_config
    plan = ctx.plan
    device = 'cpu' if ctx.rehearsal else 'cuda'
    if ctx.rehearsal:
        ctx.report.substitute(f'inference on CPU with bfloat16 autocast (float16 on CUDA), batch '
                              f'{plan.infer_batch} at {plan.infer_size}x{plan.infer_size}, '
                              f'RapidNet {list(plan.infer_archs)} and peers '
                              f'{list(plan.infer_peers)} only; no memory figures')
    subjects = []
    for arch in plan.infer_archs:
        cfg = load_model_config(config_file('cls', f'rapidnet_{arch}_in1k.py'))
        subjects.append(config_subject(f'RapidNet-{"Ti" if arch == "ti" else arch.upper()}',
                                       build_model(cfg)))
    subjects += [peer_subject(p) for p in (plan.infer_peers or tuple(PEERS))]
    settings = Settings(device=device, amp=True, channels_last=True, runtimes=('eager', ),
                        warmup=plan.infer_warmup, runs=plan.infer_runs)
    forms = ['train', 'deploy']
    size = (plan.infer_size, plan.infer_size)
    measure(subjects, forms, [plan.infer_batch], size, settings, log=log)
    rows = []
    x = make_input(plan.infer_batch, size, settings)
    for s in subjects:
        for form in forms:
            timing = s.results[plan.infer_batch][form]
            row = dict(model=s.name, form=form, params_m=round(s.params[form] / 1e6, 2),
                       images_per_s=round(plan.infer_batch / timing.median_ms * 1e3, 1),
                       median_ms=round(timing.median_ms, 3), runs=timing.runs,
                       peak_activation_mib=None)
            if device == 'cuda':
                run = prepare(s.forms[form], settings, 'eager', x)
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                run(x)
                torch.cuda.synchronize()
                row['peak_activation_mib'] = round(
                    (torch.cuda.max_memory_allocated() - before) / 2**20, 1)
            rows.append(row)
    return dict(batch=plan.infer_batch, input=f'{plan.infer_size}x{plan.infer_size}',
                amp='float16' if device == 'cuda' else 'bfloat16', channels_last=True,
                warmup=plan.infer_warmup, rows=rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_scalars(work_dir: str) -> List[dict]:
    """The training entries of mmengine's ``vis_data/scalars.json`` (one per logged iteration)."""
    paths = sorted(p for p in (osp.join(work_dir, d, 'vis_data', 'scalars.json')
                               for d in os.listdir(work_dir)) if osp.isfile(p))
    if not paths:
        return []
    with open(paths[-1]) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    return [e for e in entries if 'loss' in e]


def judge_losses(losses: List[float]) -> dict:
    """Finite, and falling: the mean of the last third below the mean of the first third."""
    third = max(1, len(losses) // 3)
    first, last = statistics.fmean(losses[:third]), statistics.fmean(losses[-third:])
    return dict(finite=all(math.isfinite(v) for v in losses), first_mean=round(first, 4),
                last_mean=round(last, 4), falling=last < first)


def stage_train(ctx: 'Context', stage: str) -> dict:
    config, make = TRAIN_RUNS[stage]
    root = osp.join(ctx.work_dir, stage)
    os.makedirs(root, exist_ok=True)
    cfg, changes, batch, size = make(ctx, osp.join(root, 'data'))
    if ctx.rehearsal:
        make_cpu_runnable(ctx, cfg, config)
        ctx.report.substitute(f'{config}: losses must be finite; falling is recorded but not '
                              'required over a few CPU iterations')
    cfg.randomness = dict(seed=0)
    cfg_path = osp.join(root, 'config.py')
    cfg.dump(cfg_path)
    work = osp.join(root, 'work')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1',
           f'--master_port={free_port()}', shipped_file('tools', 'train.py'), cfg_path,
           '--launcher', 'pytorch', '--work-dir', work, '--no-validate']
    log(f'{stage}: torchrun --nproc_per_node=1 tools/train.py {config} (log: {root}/train.log)')
    start = time.perf_counter()
    with open(osp.join(root, 'train.log'), 'w') as out:
        code = subprocess.run(cmd, cwd=root, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    result = dict(config=config, optim_wrapper=cfg.optim_wrapper.get('type', 'OptimWrapper'),
                  norm=norm_type(cfg), launcher='pytorch (torchrun --nproc_per_node=1)',
                  batch=batch, input=size, changes=changes, wall_s=round(wall, 1))
    if code != 0:
        with open(osp.join(root, 'train.log')) as f:
            tail = f.read().splitlines()[-25:]
        print('\n'.join(tail))
        result['log_tail'] = tail
        raise CheckFailed(f'tools/train.py exited with {code}', result)
    entries = read_scalars(work)
    losses = [float(e['loss']) for e in entries]
    if len(losses) < 2:
        raise CheckFailed(f'{len(losses)} training losses logged; need at least 2', result)
    result.update(iterations=len(losses), losses=[round(v, 4) for v in losses],
                  **judge_losses(losses))
    times = [float(e['time']) for e in entries][min(5, len(entries) // 3):]
    result['images_per_s'] = round(batch / statistics.median(times), 2)
    memory = [e['memory'] for e in entries if 'memory' in e]
    result['peak_memory_mib'] = max(memory) if memory else None
    if not result['finite']:
        raise CheckFailed('losses are not finite', result)
    if not result['falling']:
        if not ctx.rehearsal:
            raise CheckFailed('losses are not falling', result)
        result['falling_judged'] = False  # a few CPU iterations say nothing about learning
    return result
