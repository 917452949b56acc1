"""Fold a trained checkpoint into RapidNet's deploy (inference) form.

Usage: python tools/deployment/reparameterize.py CONFIG CHECKPOINT OUT [--cfg-options k=v ...]

Every RapidNet in the config's model (the backbone of a classifier, detector or segmentor) has its
BatchNorms, layer scales and positional-encoding identities folded into its convolutions. OUT loads
strictly into the deploy form: the config's configs/cls/deploy/ twin, or any config with
``--cfg-options model.backbone.deploy=True``. The tool checks that itself before it finishes.
"""
import argparse
import copy
import os
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

from rapidnet_mm.config import build_model, load_model_config
from rapidnet_mm.deploy.reparameterize import reparameterize_model
from rapidnet_mm.cli import run_tool
from rapidnet_mm.config import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training-form config the checkpoint belongs to')
    parser.add_argument('checkpoint', help='training-form checkpoint (mmengine format)')
    parser.add_argument('out', help='where to write the deploy checkpoint (.pth)')
    parser.add_argument('--input-size', type=int, nargs=2, default=(224, 224),
                        metavar=('H', 'W'), help='input size of the equality check (224 224)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def set_deploy(cfg, module_names) -> None:
    """Set ``deploy=True`` on the config entries that built the named modules."""
    for name in module_names:
        node = cfg.model
        for part in name.split('.') if name else []:
            if part not in node:
                raise ConfigError(f'cannot find the config entry of {name!r} to build its '
                                  'deploy form (expected model.<name>)')
            node = node[part]
        node['deploy'] = True


def forward_features(model, x):
    """The model's eval output used to compare forms: the classifier's logits, else the
    detector's / segmentor's extracted features."""
    from mmpretrain.models import ImageClassifier
    with torch.no_grad():
        if isinstance(model, ImageClassifier) and model.with_head:
            return [model.head(model.extract_feat(x))]
        return list(model.extract_feat(x))


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> None:
        cfg = load_model_config(args.config, args.cfg_options)
        print(f'loading {args.checkpoint} into {cfg.model.type} ({args.config})')
        model = build_model(cfg, args.checkpoint)
        original = copy.deepcopy(model)
        names = reparameterize_model(model)
        print(f'folded: {", ".join(n or "<model>" for n in names)}')
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        meta = dict(deploy=True, reparameterized=names, source=osp.abspath(args.checkpoint),
                    config=args.config)
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        torch.save(dict(state_dict=state, meta=meta), args.out)
        print(f'saved {args.out} ({len(state)} tensors)')

        # Self-check: the written file into a freshly built deploy form, outputs as before.
        deploy_cfg = copy.deepcopy(cfg)
        set_deploy(deploy_cfg, names)
        deploy = build_model(deploy_cfg, args.out)
        x = torch.randn(1, 3, *args.input_size, generator=torch.Generator().manual_seed(0))
        diffs = []
        for ref, got in zip(forward_features(original, x), forward_features(deploy, x)):
            diffs.append((ref - got).abs().max().item() / max(ref.abs().max().item(), 1e-12))
        print(f'deploy form built with model.<{names[0] or "model"}>.deploy=True loads {args.out} '
              f'strictly; largest output difference {max(diffs):.2g} of the output scale')
        if max(diffs) > 1e-4:
            raise ConfigError(f'the deploy form does not reproduce the training form '
                              f'(relative difference {max(diffs):.2g})')
    return run_tool(body, ValueError)


if __name__ == '__main__':
    sys.exit(main())
