# Semantic FPN with a RapidNet-M backbone, ADE20K, 40k iterations: the recipe of the authors'
# mmseg 0.30 config fpn_rapidnet_m_ade20k_40k.py, restated for mmseg 1.x. Published weights,
# evaluated as they are (converted in memory): python tools/test.py THIS_CONFIG
# hf://SLDGroup/RapidNet/Semantic_Segmentation/RapidNet_M_Sem_Seg.pth (see docs/segmentation.md).
# Everything not set here comes from mmseg's own bases: FPN neck 256 on the four stages, FPN head
# 128 channels with dropout 0.1, 512x512 crops from scale (2048, 512) with ratio 0.5-2.0 and
# cat_max_ratio 0.75, flip 0.5, photometric distortion, 4 images per GPU, mIoU, evaluation and
# checkpoint every 4k of 40k iterations.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    'mmseg::_base_/default_runtime.py',
]

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

# ImageNet-1K weights: the authors' RapidNet_M.pth as published on the Hugging Face Hub (downloaded
# into huggingface_hub's cache; RapidNetPretrained converts it in memory and takes the EMA
# weights, as the original did). A local copy, or a file converted with
# tools/model_converters/convert_official.py, works too:
# --cfg-options model.backbone.init_cfg.checkpoint=PATH. Only the backbone's tensors are loaded.
pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_M.pth'

# BatchNorm: the original turned every backbone BN into SyncBN and trained the statistics (its
# norm_eval guard only caught plain BatchNorm2d, so it never took effect); the FPN head used
# SyncBN too. SyncBN is the multi-GPU choice; when the run is not distributed (one GPU, CPU)
# mmengine's Runner reverts SyncBN to plain BN (and torch's SyncBatchNorm computes as BN
# anyway), so the same config serves both. Set norm_eval=True / frozen_stages>=0 to freeze.
norm_cfg = dict(type='SyncBN', requires_grad=True)
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='RapidNet',
        arch='m',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # the per-block rates the authors' code actually trained with (docs/reproduction.md)
        drop_path_schedule='original',
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=norm_cfg,
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-M stage widths (rapidnet_mm.models.arch.ARCH_SETTINGS['m']['channels'])
    neck=dict(in_channels=[32, 64, 160, 320]),
    decode_head=dict(num_classes=150, norm_cfg=norm_cfg))

# Test: the original's aligned resize (keep ratio to fit (2048, 512), then each side stretched up
# to a multiple of 32); ground truth is loaded after it and stays at its original size, and the
# prediction is resized back to the original shape, as in the original evaluation.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='AlignResize', scale=(2048, 512), size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Batch: 4 images per GPU x 8 GPUs = 32 in total. With another total,
# `tools/train.py --auto-scale-lr` scales the lr linearly from this base.
auto_scale_lr = dict(enable=False, base_batch_size=32)

# AdamW lr 2e-4, weight decay 1e-4 on every parameter, no gradient clipping, FP32.
optimizer = dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)

# Poly decay, power 0.9, all the way to 0 over the 40k iterations (mmseg's base stops at 1e-4).
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False)
]
