# RapidNet-Ti trained from scratch on scikit-learn's handwritten digits (1,797 real 8x8 scans,
# upsampled to 32x32) in the ImageNet-style folder of tools/misc/make_digits.py: a real model,
# small enough to train on a CPU in a few minutes, whose held-out accuracy measures int8 exports
# (tools/misc/digits_int8.py). The network is the Ti classifier of rapidnet_ti_in1k.py without
# the distillation token and teacher; the ImageNet recipe's heavy augmentation, EMA and AMP are
# replaced by a short AdamW run.
_base_ = '../cls/rapidnet_ti_in1k.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

data_root = 'data/digits/'  # tools/misc/make_digits.py's default --out
image_size = 32
epochs = 12
lr = 2e-3

data_preprocessor = dict(num_classes=10)
model = dict(
    _delete_=True,
    type='ImageClassifier',
    backbone=dict(type='RapidNet', arch='ti', drop_path_rate=0.),
    head=dict(type='RapidNetClsHead', arch='ti', num_classes=10, distillation=False,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=image_size, crop_ratio_range=(0.8, 1.0),
         backend='pillow'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=0,
    drop_last=True,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    _delete_=True,
    batch_size=64,
    num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=epochs,
         T_max=epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(_delete_=True, by_epoch=True, max_epochs=epochs, val_interval=epochs)
auto_scale_lr = dict(base_batch_size=32)
custom_hooks = []
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=epochs, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
