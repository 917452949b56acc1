# RepViT-M0.9 (Wang et al., "RepViT: Revisiting Mobile CNN From ViT Perspective", the RapidNet
# paper's peer) evaluated on ImageNet-1K in the same harness as configs/cls/: timm's own model
# (timm.create_model('repvit_m0_9'), distillation head included; eval output = mean of both
# heads) wrapped by mmpretrain's TimmClassifier. Nothing of RepViT is reimplemented here.
#
# Evaluation only: the pipeline is timm's pretrained_cfg for this model (bicubic resize of the
# shorter side to floor(224 / 0.95) = 235, centre crop 224, ImageNet mean/std). Weights: a timm
# state dict loads directly (TimmClassifier adds its 'model.' prefix), e.g.
#   python tools/test.py configs/repvit/repvit_m0_9_in1k.py repvit_m0_9_timm.pth
# or `--cfg-options model.pretrained=True` lets timm fetch its default 'repvit_m0_9' weights.
# Training RepViT is out of scope (no schedule is stated); see docs/model_zoo.md.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

model = dict(
    type='TimmClassifier',
    model_name='repvit_m0_9',
    pretrained=False,
    loss=dict(type='CrossEntropyLoss', loss_weight=1.0))

# timm's pretrained_cfg for RepViT: crop_pct 0.95, bicubic.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=235, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_cfg = dict()
test_cfg = dict()
# evaluation only: no training loop (the dataset base's training loader is dropped)
train_dataloader = None
