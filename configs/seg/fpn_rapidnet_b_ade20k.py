# Semantic FPN with a RapidNet-B backbone, ADE20K, 40k iterations: the RapidNet-M recipe with the
# B variant, as in the authors' fpn_rapidnet_b_ade20k_40k.py. Published weights, evaluated as they
# are: python tools/test.py THIS_CONFIG
# hf://SLDGroup/RapidNet/Semantic_Segmentation/RapidNet_B_Sem_Seg.pth (see docs/segmentation.md).
_base_ = './fpn_rapidnet_m_ade20k.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_B.pth'

model = dict(
    backbone=dict(
        arch='b',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-B stage widths (ARCH_SETTINGS['b']['channels'])
    neck=dict(in_channels=[64, 128, 224, 416]))
