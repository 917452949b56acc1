# The demo: Mask R-CNN + RapidNet-S (configs/det/maskrcnn_rapidnet_s_coco.py) trained from scratch
# on the synthetic tiny COCO dataset of tools/misc/make_tiny_coco.py (128x128 images, three shape
# categories), small enough to learn within minutes on a CPU. Run it with `tools/demo.py`, or
# `tools/train.py` / `tools/test.py` after `tools/misc/make_tiny_coco.py`.
_base_ = '../det/maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

data_root = 'data/tiny_coco/'
# the categories of tools/misc/make_tiny_coco.py, in its order
metainfo = dict(classes=('circle', 'triangle', 'square'),
                palette=[(220, 20, 60), (0, 160, 0), (30, 60, 255)])
image_size = (128, 128)
max_iters = 120
neck_channels = 128

model = dict(
    # No pretrained weights exist for this run: keep the original (Kaiming) initialisation.
    # Without the ImageNet start, stochastic depth only slows the short run down.
    backbone=dict(init_cfg=None, drop_path_rate=0.),
    # CPU budget: FPN and heads at 128 channels (not 256) and a 512-wide box head (not 1024);
    # the Mask R-CNN structure is unchanged. At 256 the 3x3 convs of the FPN, the RPN and above
    # all the mask head cost several times the backbone.
    neck=dict(out_channels=neck_channels),
    # Objects are 25-60 px: anchors of 16-256 px (scale 4 on strides 4-64) instead of 32-512.
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels,
                  anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        mask_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=512, num_classes=3),
        mask_head=dict(in_channels=neck_channels, conv_out_channels=neck_channels,
                       num_classes=3)),
    # A handful of objects per image: far fewer proposals and RoI samples than on COCO.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# 4 images per step on one device; num_workers=0 keeps the 2-core CPU for the model.
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based training
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# Short iteration-based schedule: evaluate and save once, at the end.
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
auto_scale_lr = dict(enable=False, base_batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.8)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
