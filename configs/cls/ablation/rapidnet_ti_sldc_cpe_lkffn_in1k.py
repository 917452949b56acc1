# Supplementary Table 5, row 3: RapidNet-Ti with a single-level dilated conv (dilation 2), the
# conditional positional encoding and the large-kernel FFN, with distillation.
# Reported: 0.5 GMACs, 76.0% top-1 (mean of two runs; row 4, the full MLDC model at 76.3%, is
# ../rapidnet_ti_in1k.py). Recipe and global batch (2048) as rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(mixer_type='sldc'))
