# RepViT-M1.1 on ImageNet-1K through timm: the RepViT-M0.9 evaluation config
# (repvit_m0_9_in1k.py) with the larger model; same pipeline (timm's crop_pct 0.95, bicubic).
_base_ = './repvit_m0_9_in1k.py'

model = dict(model_name='repvit_m1_1')
