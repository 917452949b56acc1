# Supplementary Table 6, row 2: RapidNet-Ti with dilations (3, 4) instead of (2, 3), with
# distillation. Reported: 6.6M params, 75.9% top-1. Recipe and global batch (2048) as
# rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(dilations=(3, 4)))
