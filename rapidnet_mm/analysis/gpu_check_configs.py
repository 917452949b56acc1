"""The shipped recipes as the GPU check (:mod:`rapidnet_mm.analysis.gpu_check`) trains them: a
few iterations on synthetic data, every change recorded, and the CPU rehearsal's substitutions
for what needs CUDA."""
import os.path as osp
from typing import Optional

from rapidnet_mm.config import shipped_file

from .gpu_check_plan import Context

DET_CONFIG = 'configs/det/maskrcnn_rapidnet_s_coco.py'
SEG_CONFIG = 'configs/seg/fpn_rapidnet_s_ade20k.py'
CLS_CONFIG = 'configs/cls/rapidnet_ti_in1k.py'


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
