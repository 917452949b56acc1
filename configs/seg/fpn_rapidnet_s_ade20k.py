# Semantic FPN with a RapidNet-S backbone, ADE20K, 40k iterations: the RapidNet-M recipe with the
# S variant. The authors published segmentation configs and weights for M and B only.
_base_ = './fpn_rapidnet_m_ade20k.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_S.pth'

model = dict(
    backbone=dict(
        arch='s',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-S stage widths (ARCH_SETTINGS['s']['channels'])
    neck=dict(in_channels=[32, 64, 112, 224]))
