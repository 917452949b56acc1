# RapidNet-B on ImageNet-1K: the paper's RapidNet-B row of Table 1 (3.4 GMACs, 30.6M params),
# with the same recipe as RapidNet-Ti (rapidnet_ti_in1k.py: hard distillation from RegNetY-16GF,
# 300 epochs). Global batch assumed: 2048 = 16 GPUs x 128 images (lr 4e-3); on another number of
# GPUs pass --auto-scale-lr.
_base_ = './rapidnet_ti_in1k.py'

arch = 'b'
model = dict(backbone=dict(arch=arch), head=dict(arch=arch))
