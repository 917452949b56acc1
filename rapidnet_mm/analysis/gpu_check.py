"""The GPU check: the shipped recipes train on CUDA, CUDA equals CPU, and what they cost.

On one CUDA device, in this order, each stage timed:

- env: versions, the GPU, and that mmcv's ops were compiled with torch's CUDA;
- ops: mmcv's CUDA RoIAlign (forward and input gradient) and NMS equal their CPU results;
- backbone: each eval-mode RapidNet (Ti/S/M/B) gives the same outputs on CUDA as on CPU
  (fp32, TF32 off; tolerance below);
- train_det, train_seg, train_cls: Mask R-CNN + RapidNet-S, Semantic FPN + RapidNet-S and the
  distilled RapidNet-Ti classifier train 30 iterations on synthetic data through
  ``torchrun --nproc_per_node=1 tools/train.py --launcher pytorch`` (SyncBN active where the
  config has it, the config's own optimiser wrapper, AMP included); losses must be finite and
  falling; training images/s and peak memory come from mmengine's own log;
- infer: images/s at batch 256 with AMP and channels_last for RapidNet Ti/S/M/B and the timm
  peers of the benchmark (:mod:`rapidnet_mm.analysis.benchmark`), and each one's peak
  activation memory.

:func:`run_check` writes ``gpu_check.json`` and ``gpu_check.md`` and prints the tables
(``tools/analysis_tools/gpu_check.py`` is its command line). The CPU rehearsal runs the same
code paths on CPU at tiny sizes; every substitution it makes is printed and recorded, and the
CUDA-vs-CPU comparisons are recorded as skipped.
"""
import datetime
import json
import math
import os
import os.path as osp
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from rapidnet_mm.config import ConfigError, config_file, shipped_file

STAGES = ('env', 'ops', 'backbone', 'train_det', 'train_seg', 'train_cls', 'infer')
ARCHS = ('ti', 's', 'm', 'b')
# CUDA output vs CPU output of an eval-mode backbone in fp32 with TF32 off: largest absolute
# difference over all outputs, relative to the largest |CPU output| (different kernels sum in a
# different order; 1e-4 leaves a margin of ~10x over fp32 rounding through ~60 layers).
BACKBONE_RTOL = 1e-4
ROI_ALIGN_ATOL = 1e-5       # forward: the same bilinear samples averaged in the same order
ROI_ALIGN_GRAD_ATOL = 1e-4  # backward: CUDA accumulates with atomicAdd in no fixed order
DET_CONFIG = 'configs/det/maskrcnn_rapidnet_s_coco.py'
SEG_CONFIG = 'configs/seg/fpn_rapidnet_s_ade20k.py'
CLS_CONFIG = 'configs/cls/rapidnet_ti_in1k.py'


class NoCudaError(ConfigError):
    """A plain run on a machine where torch sees no CUDA device."""


@dataclass
class Plan:
    """Sizes of one check: the full one on CUDA, or the tiny CPU rehearsal."""
    det_iters: int = 30
    det_batch: int = 2
    det_scale: tuple = (1333, 800)   # mmdet (w, h)
    det_images: int = 32
    det_image_size: int = 256
    seg_iters: int = 30
    seg_batch: int = 8
    seg_crop: Optional[int] = None   # None: the recipe's 512
    seg_images: int = 32
    seg_image_sizes: tuple = (256, 512)
    cls_epochs: int = 3
    cls_batch: int = 128
    cls_per_class: int = 320         # 4 classes x 320 = 1280 images = 10 iterations of 128
    cls_size: Optional[int] = None   # None: the recipe's 224
    warmup_iters: int = 5
    workers: Optional[int] = None    # None: each config's own
    infer_batch: int = 256
    infer_size: int = 224
    infer_warmup: int = 10
    infer_runs: int = 50             # benchmark.measure times max(5, runs // 5) at batch > 1
    infer_archs: tuple = ARCHS
    infer_peers: Optional[tuple] = None  # None: all of benchmark.PEERS
    backbone_batch: int = 2


REHEARSAL = Plan(det_iters=2, det_batch=2, det_scale=(128, 128), det_images=4, det_image_size=128,
                 seg_iters=3, seg_batch=2, seg_crop=64, seg_images=4, seg_image_sizes=(65, 128),
                 cls_epochs=2, cls_batch=4, cls_per_class=2, cls_size=64, warmup_iters=1,
                 workers=0, infer_batch=2, infer_size=64, infer_warmup=1, infer_runs=5,
                 infer_archs=('ti', ), infer_peers=('mobilenetv2_140', ))


class Report:
    """Everything the check found, written as JSON and markdown; every substitution recorded."""

    def __init__(self, rehearsal: bool) -> None:
        self.data: dict = dict(
            mode='cpu-rehearsal' if rehearsal else 'cuda',
            date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            substitutions=[], stages={})

    def substitute(self, text: str) -> None:
        print(f'substitution (CPU rehearsal): {text}', flush=True)
        self.data['substitutions'].append(text)

    @property
    def stages(self) -> Dict[str, dict]:
        return self.data['stages']

    @property
    def passed(self) -> bool:
        return not any(s['status'] == 'failed' for s in self.stages.values())


@dataclass
class Context:
    """What every stage gets: the mode, its sizes, a folder for data and logs, the report."""
    rehearsal: bool
    plan: Plan
    work_dir: str
    report: Report


def log(message: str) -> None:
    print(f'[gpu_check {time.strftime("%H:%M:%S")}] {message}', flush=True)


# ---------------------------------------------------------------------------------------------
# stages that run in this process

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


class CheckFailed(Exception):
    """A check that ran and did not hold; ``details`` go into the report."""

    def __init__(self, message: str, details: Optional[dict] = None) -> None:
        super().__init__(message)
        self.details = details or {}


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
    from rapidnet_mm.analysis.benchmark import (PEERS, Settings, config_subject, make_input,
                                                measure, peer_subject, prepare)
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


def set_iteration_schedule(cfg, iters: int, warmup: int) -> None:
    """Iteration-based loop of ``iters`` with a ``warmup``-iteration linear warm-up, logging
    every iteration, no checkpoint written."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
                                end=warmup)]
    cfg.log_processor = dict(by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)


def set_workers(cfg, workers: Optional[int]) -> None:
    if workers is not None:
        cfg.train_dataloader.num_workers = workers
        cfg.train_dataloader.persistent_workers = workers > 0


def det_config(ctx: 'Context', data_root: str):
    from mmengine.config import Config

    from rapidnet_mm.datasets.tiny_coco import CATEGORIES, make_dataset
    plan = ctx.plan
    make_dataset(data_root, plan.det_images, 1, plan.det_image_size, verbose=False)
    cfg = Config.fromfile(shipped_file(DET_CONFIG))
    cfg.model.backbone.init_cfg = None
    cfg.train_dataloader.batch_size = plan.det_batch
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_dataloader.dataset.update(
        data_root=data_root, ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=dict(classes=CATEGORIES))
    resize = cfg.train_dataloader.dataset.pipeline[2]
    assert resize.type == 'Resize', resize
    resize.update(scale=plan.det_scale, keep_ratio=False)
    set_iteration_schedule(cfg, plan.det_iters, plan.warmup_iters)
    set_workers(cfg, plan.workers)
    changes = [f'synthetic tiny COCO ({plan.det_images} images of {plan.det_image_size} px, '
               '3 shape classes; the 80-class heads kept)',
               f'every image resized to {plan.det_scale[0]}x{plan.det_scale[1]} (keep_ratio '
               'off: the synthetic images are square)',
               f'batch {plan.det_batch} per GPU (recipe: 1)', 'no pretrained backbone weights']
    return cfg, changes, plan.det_batch, f'{plan.det_scale[1]}x{plan.det_scale[0]}'


def seg_config(ctx: 'Context', data_root: str):
    from mmengine.config import Config

    from rapidnet_mm.datasets.tiny_ade20k import make_ade_layout
    plan = ctx.plan
    make_ade_layout(data_root, 0, plan.seg_images, 1, plan.seg_image_sizes[0],
                    plan.seg_image_sizes[1])
    cfg = Config.fromfile(shipped_file(SEG_CONFIG))
    cfg.model.backbone.init_cfg = None
    cfg.train_dataloader.batch_size = plan.seg_batch
    cfg.train_dataloader.dataset.data_root = data_root
    crop = plan.seg_crop or cfg.crop_size[0]
    if plan.seg_crop:
        cfg.model.data_preprocessor.size = (crop, crop)
        pipeline = cfg.train_dataloader.dataset.pipeline
        assert pipeline[2].type == 'RandomResize' and pipeline[3].type == 'RandomCrop'
        pipeline[2].scale = (4 * crop, crop)
        pipeline[3].crop_size = (crop, crop)
    set_iteration_schedule(cfg, plan.seg_iters, plan.warmup_iters)
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000,
                                by_epoch=False)]  # the recipe's: 30 of 40k iterations
    set_workers(cfg, plan.workers)
    changes = [f'synthetic ADE20K layout ({plan.seg_images} images of '
               f'{plan.seg_image_sizes[0]}-{plan.seg_image_sizes[1]} px, 4 of the 150 classes)',
               f'batch {plan.seg_batch} per GPU (recipe: 4)', 'no pretrained backbone weights']
    return cfg, changes, plan.seg_batch, f'{crop}x{crop}'


def cls_config(ctx: 'Context', data_root: str):
    from mmengine.config import Config

    from rapidnet_mm.datasets import tiny_imagenet as helpers
    plan = ctx.plan
    helpers.make_imagenet(data_root, {'train': plan.cls_per_class}, size=64)
    teacher = osp.join(osp.dirname(data_root), 'teacher.pth')
    helpers.make_teacher_checkpoint(teacher)
    cfg = Config.fromfile(shipped_file(CLS_CONFIG))
    cfg.data_preprocessor.num_classes = helpers.NUM_CLASSES
    cfg.model.head.num_classes = helpers.NUM_CLASSES
    cfg.model.head.topk = (1, )
    cfg.model.teacher = dict(arch=helpers.TINY_TEACHER, checkpoint=teacher)
    cfg.train_dataloader.batch_size = plan.cls_batch
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_dataloader.dataset.split = 'train'
    size = plan.cls_size or 224
    if plan.cls_size:
        helpers.scale_sizes(cfg.train_dataloader.dataset.pipeline, {224: plan.cls_size})
    cfg.train_cfg = dict(by_epoch=True, max_epochs=plan.cls_epochs)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
                                end=plan.warmup_iters)]
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    set_workers(cfg, plan.workers)
    images = helpers.NUM_CLASSES * plan.cls_per_class
    changes = [f'synthetic ImageNet layout ({images} images of 64 px, {helpers.NUM_CLASSES} '
               f'classes, head {helpers.NUM_CLASSES}-way)',
               f'tiny random teacher timm {helpers.TINY_TEACHER!r} instead of regnety_160',
               f'{plan.cls_epochs} epochs of {images // plan.cls_batch} iterations (RepeatAug '
               'sampler kept)']
    return cfg, changes, plan.cls_batch, f'{size}x{size}'


TRAIN_RUNS = {'train_det': (DET_CONFIG, det_config), 'train_seg': (SEG_CONFIG, seg_config),
              'train_cls': (CLS_CONFIG, cls_config)}


def norm_type(cfg) -> str:
    backbone = cfg.model.backbone.get('norm_cfg') or {}
    return backbone.get('type', 'BN')


def make_cpu_runnable(ctx: 'Context', cfg, config: str) -> None:
    """The rehearsal's substitutions for what needs CUDA, each recorded."""
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    ctx.report.substitute(f'{config}: distributed backend gloo instead of nccl')
    for path in ('backbone', 'decode_head'):
        part = cfg.model.get(path)
        if part is not None and (part.get('norm_cfg') or {}).get('type') == 'SyncBN':
            part.norm_cfg.type = 'BN'
            ctx.report.substitute(f'{config}: model.{path}.norm_cfg BN instead of SyncBN '
                                  '(SyncBatchNorm needs CUDA tensors)')
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
        ctx.report.substitute(f'{config}: OptimWrapper (fp32) instead of AmpOptimWrapper (AMP '
                              'needs a GPU)')


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


# ---------------------------------------------------------------------------------------------

def run_stages(ctx: Context, stages: Sequence[str]) -> None:
    """Run ``stages`` in order, recording each one's status, result and time in the report; a
    stage that fails or crashes is recorded and the next one runs."""
    runners: Dict[str, Callable[[Context], dict]] = dict(
        env=stage_env, ops=stage_ops, backbone=stage_backbone, infer=stage_infer,
        **{name: (lambda c, n=name: stage_train(c, n)) for name in TRAIN_RUNS})
    started = time.perf_counter()
    for name in stages:
        entry: dict = {}
        ctx.report.stages[name] = entry
        if ctx.rehearsal and name in ('ops', 'backbone'):
            entry.update(status='skipped: no CUDA', elapsed_s=0.0)
            log(f'{name}: skipped: no CUDA (CUDA-vs-CPU comparison)')
            continue
        log(f'{name}: started ({time.perf_counter() - started:.0f} s into the check)')
        t0 = time.perf_counter()
        try:
            entry['result'] = runners[name](ctx)
            entry['status'] = 'passed'
        except CheckFailed as err:
            entry.update(status='failed', error=str(err), result=err.details)
        except Exception as err:  # noqa: BLE001  (any crash is recorded; the next stage runs)
            entry.update(status='failed', error=f'{type(err).__name__}: {err}')
        entry['elapsed_s'] = round(time.perf_counter() - t0, 1)
        log(f'{name}: {entry["status"]} in {entry["elapsed_s"]} s'
            + (f' ({entry["error"]})' if entry['status'] == 'failed' else ''))
    ctx.report.data['total_s'] = round(time.perf_counter() - started, 1)


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return 'n/a'
    return f'{value:.{digits}f}' if isinstance(value, float) else str(value)


def stage_detail(name: str, stage: dict) -> str:
    """The ``detail`` cell of a stage's row: its error, or its comparison figures."""
    result = stage.get('result') or {}
    if name == 'ops' and 'nms_equal' in result:
        return (f"RoIAlign fwd {result['roi_align_forward_max_abs_diff']:.1e} (tol "
                f"{ROI_ALIGN_ATOL:.0e}), grad {result['roi_align_grad_max_abs_diff']:.1e} "
                f"(tol {ROI_ALIGN_GRAD_ATOL:.0e}), NMS equal: {result['nms_equal']}")
    if name == 'backbone' and result.get('diffs'):
        return ('max rel. diff ' + ', '.join(f'{a}: {d:.1e}' for a, d in result['diffs'].items())
                + f' (tol {BACKBONE_RTOL:.0e})')
    return stage.get('error', '')


def markdown(report: Report) -> str:
    """The report as markdown: the machine, one row per stage, the training runs, inference."""
    data = report.data
    env = (data['stages'].get('env') or {}).get('result') or {}
    lines = [f"# GPU check ({data['mode']}), {data['date']}", '',
             f"Machine: {env.get('device', '?')}, {env.get('cpu_count', '?')} CPU cores; torch "
             f"{env.get('torch', '?')} (CUDA {env.get('torch_cuda', '?')}), mmcv "
             f"{env.get('mmcv', '?')} (ops CUDA {env.get('mmcv_ops_cuda', '?')}), Python "
             f"{env.get('python', '?')}. Result: {'passed' if report.passed else 'FAILED'}.", '',
             '| stage | status | seconds | detail |', '|---|---|---|---|']
    for name, s in data['stages'].items():
        lines.append(f"| {name} | {s['status']} | {fmt(s.get('elapsed_s'))} | "
                     f'{stage_detail(name, s)} |')
    train = [(n, s['result']) for n, s in data['stages'].items()
             if n.startswith('train_') and s.get('result', {}).get('losses')]
    if train:
        lines += ['', '| training | config | optimiser wrapper | norm | batch | input | iters | '
                  'loss first third -> last third | falling | images/s | peak memory MiB |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for name, r in train:
            lines.append(f"| {name} | {r['config']} | {r['optim_wrapper']} | {r['norm']} | "
                         f"{r['batch']} | {r['input']} | {r['iterations']} | "
                         f"{r['first_mean']:.3f} -> {r['last_mean']:.3f} | "
                         f"{'yes' if r['falling'] else 'no'} | "
                         f"{fmt(r['images_per_s'])} | {fmt(r['peak_memory_mib'])} |")
    infer = (data['stages'].get('infer') or {}).get('result') or {}
    if infer.get('rows'):
        lines += ['', f"Inference: batch {infer['batch']}, {infer['input']}, AMP "
                  f"({infer['amp']}), channels_last, eager.", '',
                  '| model | form | params M | images/s | peak activation MiB |',
                  '|---|---|---|---|---|']
        for r in infer['rows']:
            lines.append(f"| {r['model']} | {r['form']} | {r['params_m']:.2f} | "
                         f"{r['images_per_s']:.1f} | {fmt(r['peak_activation_mib'])} |")
    if data['substitutions']:
        lines += ['', 'Substitutions of the CPU rehearsal:', '']
        lines += [f'- {s}' for s in data['substitutions']]
    return '\n'.join(lines) + '\n'


def run_check(out: str, rehearse_on_cpu: bool = False, stages: Sequence[str] = STAGES,
              work_dir: Optional[str] = None) -> bool:
    """Run the check and write ``gpu_check.json`` and ``gpu_check.md`` to ``out``.

    Args:
        out: Folder for the two files (created).
        rehearse_on_cpu: Run the same code paths on CPU at tiny sizes (gloo, BN, fp32), with
            every substitution recorded and the CUDA-vs-CPU comparisons skipped.
        stages: The stages to run (names of STAGES); they run in STAGES' order.
        work_dir: Folder for data, configs and training logs (default: a new temporary one,
            kept).

    Returns:
        Whether every stage that ran passed.

    Raises:
        NoCudaError: a plain run where torch sees no CUDA device (before anything is written).
    """
    import torch
    if not rehearse_on_cpu and not torch.cuda.is_available():
        raise NoCudaError('no CUDA device here (torch.cuda.is_available() is False); run this '
                          'on a machine with a GPU and mmcv built with its CUDA ops '
                          '(docs/gpu.md), or rehearse the same code paths on CPU with '
                          '--rehearse-on-cpu')
    report = Report(rehearse_on_cpu)
    if rehearse_on_cpu:
        report.substitute('CPU instead of CUDA, tiny sizes and iterations; RoIAlign/NMS and '
                          'backbone CUDA-vs-CPU comparisons skipped')
    os.makedirs(out, exist_ok=True)
    work_dir = work_dir or tempfile.mkdtemp(prefix='gpu_check_')
    order = [s for s in STAGES if s in stages]
    log(f'mode {report.data["mode"]}, work dir {work_dir}, stages {order}')
    ctx = Context(rehearse_on_cpu, REHEARSAL if rehearse_on_cpu else Plan(), work_dir, report)
    run_stages(ctx, order)
    report.data['passed'] = report.passed
    with open(osp.join(out, 'gpu_check.json'), 'w') as f:
        json.dump(report.data, f, indent=1)
    text = markdown(report)
    with open(osp.join(out, 'gpu_check.md'), 'w') as f:
        f.write(text)
    print(text)
    log(f"wrote {osp.join(out, 'gpu_check.json')} and gpu_check.md; "
        f"{'passed' if report.passed else 'FAILED'} in {report.data['total_s']} s")
    return report.passed
