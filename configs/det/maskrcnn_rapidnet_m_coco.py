# Mask R-CNN + FPN, RapidNet-M backbone, COCO 1x: the recipe of the authors'
# mask_rcnn_rapidnet_m_fpn_1x_coco.py (published weights: RapidNet_M_Detection.pth, converted
# with tools/model_converters/convert_official.py; see docs/detection.md).
_base_ = './maskrcnn_rapidnet_s_coco.py'

custom_imports = dict(imports=['rapidnet_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

pretrained = 'checkpoints/RapidNet_M.pth'

model = dict(
    backbone=dict(
        arch='m',
        init_cfg=dict(type='RapidNetPretrained', checkpoint=pretrained, prefix='backbone.')),
    # RapidNet-M stage widths (ARCH_SETTINGS['m']['channels'])
    neck=dict(in_channels=[32, 64, 160, 320]))
