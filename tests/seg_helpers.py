"""Shared by the segmentation tests: the configs' Semantic FPN models, the authors' mmseg 0.30
checkpoints synthesised from a model, and the --cfg-options of a short CPU run on the tiny
ADE20K-layout set."""
import os.path as osp

from mmengine.config import Config
from mmseg.registry import MODELS
from original_layout import OriginalDownstreamBackbone, randomize_
from tool_helpers import ROOT

MAX_ITERS = 12  # training iterations of the short runs


def build_segmentor(arch: str, norm: str = 'SyncBN'):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/seg/fpn_rapidnet_{arch}_ade20k.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.norm_cfg = cfg.model.decode_head.norm_cfg = dict(type=norm)
    return MODELS.build(cfg.model)


def mmseg030_neck_head_names() -> list:
    """Parameter and buffer names of mmseg 0.30's FPN(4 inputs, 4 outputs) + FPNHead, written out
    from mmseg 0.30's module structure: scale head i has max(1, i) ConvModules (conv + bn),
    each followed by an Upsample when i > 0, so the ConvModules sit at indices 0, 2, 4."""
    names = []
    for i in range(4):
        for kind in ('lateral_convs', 'fpn_convs'):
            names += [f'neck.{kind}.{i}.conv.weight', f'neck.{kind}.{i}.conv.bias']
    for i in range(4):
        for j in range(0, 2 * max(1, i), 2):
            prefix = f'decode_head.scale_heads.{i}.{j}'
            names.append(f'{prefix}.conv.weight')
            names += [f'{prefix}.bn.{b}' for b in
                      ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')]
    return names + ['decode_head.conv_seg.weight', 'decode_head.conv_seg.bias']


def fold_positional_encodings(state: dict) -> dict:
    """The state of the same network with ``cpe.pe`` folded into ``cpe.reparam_conv``."""
    folded = {}
    for key, value in state.items():
        if '.cpe.pe.' in key:
            if key.endswith('weight'):
                value = value.clone()
                value[:, 0, 3, 3] += 1
            key = key.replace('.cpe.pe.', '.cpe.reparam_conv.')
        folded[key] = value
    return folded


def synthesise(arch: str, seed: int, folded: bool = False):
    """An authors'-layout mmseg 0.30 checkpoint, the original backbone and a reference neck/head
    holding the same tensors."""
    backbone = randomize_(OriginalDownstreamBackbone(arch), seed=seed).eval()
    reference = build_segmentor(arch, norm='BN').eval()
    randomize_(reference.neck, seed=seed + 1)
    randomize_(reference.decode_head, seed=seed + 2)
    neck_head = {k: v for k, v in reference.state_dict().items()
                 if k.startswith(('neck.', 'decode_head.'))}
    # the names the authors' file has are mmseg 0.30's; they are the installed 1.x names too
    assert sorted(neck_head) == sorted(mmseg030_neck_head_names())
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    if folded:
        state = fold_positional_encodings(state)
    state.update(neck_head)
    ckpt = dict(
        state_dict=state,
        meta=dict(mmseg_version='0.30.0', mmcv_version='1.7.1', seed=0, iter=40000, epoch=1,
                  exp_name=f'fpn_rapidnet_{arch}_ade20k_40k.py', config='# mmseg 0.30 config',
                  env_info='sys.platform: linux', time='Mon Jan  1 00:00:00 2024',
                  CLASSES=('wall', 'building'), PALETTE=[[120, 120, 120], [180, 120, 120]],
                  hook_msgs=dict(last_ckpt='work_dirs/iter_40000.pth')),
        optimizer=dict(state={}, param_groups=[dict(lr=0.0, weight_decay=1e-4, params=[0])]))
    return ckpt, backbone, reference


def overrides(data_root: str) -> list:
    """--cfg-options shrinking the recipe to the tiny data set on CPU."""
    options = [
        'model.backbone.init_cfg=None',
        'model.data_preprocessor.size=(64,64)',
        # train pipeline: RandomResize (index 2) and RandomCrop (index 3) at toy scale
        'train_dataloader.dataset.pipeline.2.scale=(256,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'train_dataloader.batch_size=2',
        f'train_cfg.max_iters={MAX_ITERS}', f'train_cfg.val_interval={MAX_ITERS}',
        f'param_scheduler.0.end={MAX_ITERS}',
        'optim_wrapper.optimizer.lr=0.003',
        f'default_hooks.checkpoint.interval={MAX_ITERS}', 'default_hooks.logger.interval=4',
        'randomness.seed=0', 'env_cfg.cudnn_benchmark=False',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        # the aligned resize (index 1) to a toy scale: e.g. 101x77 -> 84x64 -> 96x64
        options.append(f'{loader}.dataset.pipeline.1.scale=(256,64)')
    return options
