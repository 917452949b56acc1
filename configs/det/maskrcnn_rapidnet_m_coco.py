# Mask R-CNN + FPN, RapidNet-M backbone, COCO 1x: the recipe of the authors'
# mask_rcnn_rapidnet_m_fpn_1x_coco.py. Published weights, evaluated as they are
# (converted in memory):
# python tools/test.py THIS_CONFIG hf://SLDGroup/RapidNet/Detection/RapidNet_M_Detection.pth
# (see docs/detection.md).
_base_ = './maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'https://huggingface.co/SLDGroup/RapidNet/resolve/main/RapidNet_M.pth'

model = dict(
    backbone=dict(
        arch='m',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-M stage widths (ARCH_SETTINGS['m']['channels'])
    neck=dict(in_channels=[32, 64, 160, 320]))
