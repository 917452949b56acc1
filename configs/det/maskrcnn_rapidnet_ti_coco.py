# Mask R-CNN + FPN, RapidNet-Ti backbone, COCO 1x: the RapidNet-S recipe with the Ti variant
# (same stage widths as S, fewer blocks). No published Ti detection weights exist.
_base_ = './maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_Ti.pth'

model = dict(
    backbone=dict(
        arch='ti',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-Ti stage widths (ARCH_SETTINGS['ti']['channels'])
    neck=dict(in_channels=[32, 64, 112, 224]))
