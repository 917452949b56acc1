# Supplementary Table 4, row 5: RapidNet-Ti (multi-level dilated conv) trained without
# knowledge distillation: no teacher, no dist_head, the label loss alone.
# Reported: 0.6 GMACs, 75.1% top-1 (76.3% with distillation, Table 4 row 6 =
# ../rapidnet_ti_in1k.py). Recipe otherwise and global batch (2048) as rapidnet_ti_in1k.py.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(head=dict(distillation=False), teacher=dict(checkpoint=None))
