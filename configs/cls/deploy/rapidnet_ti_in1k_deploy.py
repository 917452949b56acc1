# RapidNet-Ti in its reparameterised (inference) form: every BatchNorm, layer scale and
# positional-encoding identity of the backbone folded into its convolutions. Loads checkpoints
# saved from a reparameterised model; outputs equal ../rapidnet_ti_in1k.py's in eval mode.
_base_ = '../rapidnet_ti_in1k.py'

model = dict(backbone=dict(deploy=True))
