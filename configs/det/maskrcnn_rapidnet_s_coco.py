# Mask R-CNN + FPN with a RapidNet-S backbone, COCO 2017 instance segmentation, 1x schedule:
# the recipe of the authors' mmdet 2.28 configs, restated for mmdet 3.x. Everything not set here
# (FPN 256 x 5 levels, RPN / RoI heads, 1333x800 keep-ratio resize, flip 0.5, CocoMetric bbox +
# segm, 12 epochs with steps at 8 and 11) comes from mmdet's own Mask R-CNN config.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

# ImageNet-1K weights: the authors' RapidNet_S.pth as published on the Hugging Face Hub (downloaded
# into huggingface_hub's cache; EMA weights, converted in memory by RapidNetPretrained). A local
# copy, or a file converted with tools/model_converters/convert_official.py, works too:
# --cfg-options model.backbone.init_cfg.checkpoint=PATH. Only the backbone's tensors are loaded,
# all of them. See docs/detection.md.
pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_S.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RapidNet',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        # the per-block rates the authors' code actually trained with (docs/reproduction.md)
        drop_path_schedule='original',
        # Nothing frozen and BN statistics updating, as in the original: its backbone turned
        # every BN into SyncBN and its norm_eval guard only caught plain BatchNorm2d, so the
        # statistics trained. SyncBN is the multi-GPU choice; on one device (or CPU) mmengine's
        # Runner reverts SyncBN to plain BN when the run is not distributed, so the same config
        # serves both. Set norm_eval=True / frozen_stages>=0 to freeze instead.
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-S stage widths (rapidnet_mm.models.arch.ARCH_SETTINGS['s']['channels'])
    neck=dict(in_channels=[32, 64, 112, 224]))

# Batch: 8 images in total (1 image per GPU x 8 GPUs). The authors' config says 1 per GPU but
# not how many GPUs; 8 in total is what the sibling MobileViG recipe ran. With another total,
# `tools/train.py --auto-scale-lr` scales the lr linearly from this base.
train_dataloader = dict(batch_size=1, num_workers=2)
auto_scale_lr = dict(enable=False, base_batch_size=8)

# AdamW lr 2e-4, weight decay 0.05 on every parameter, no gradient clipping, FP32.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=None)

# Linear warm-up over 500 iterations from 1e-6 of the lr, then x0.1 after epochs 8 and 11.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
