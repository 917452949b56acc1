"""What tools/export_coreml.py and tools/export_onnx.py share: their common options, loading
the model they export, and turning bad input into one ``error:`` line and exit code 2."""
import argparse
import sys
from typing import Callable, Tuple

import torch.nn as nn
from mmengine.config import DictAction

from ..runner import ConfigError
from .export_module import TASKS, ExportError, check_input_size
from .model_io import (InputNormalization, build_model, input_normalization, load_model_config,
                       parse_input_size)


def add_export_args(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --checkpoint, --task, --input-size, --dilated-as-dense, --cfg-options."""
    parser.add_argument('config', help='model config (mmpretrain/mmdet/mmseg scope)')
    parser.add_argument('--checkpoint', help='weights, training or deploy form (default: '
                        'random weights, for trying the export)')
    parser.add_argument('--task', default='classifier', choices=TASKS,
                        help='classifier: image -> logits; backbone: image -> feat_s4..feat_s32')
    parser.add_argument('--input-size', type=int, nargs='+', metavar='N',
                        help='fixed input H W (multiples of 32); default 224 224 for the '
                        'classifier, required for the backbone (e.g. 512 512)')
    parser.add_argument('--dilated-as-dense', action='store_true',
                        help='rewrite each dilated 3x3 conv as the equal dense (2d+1)x(2d+1) one')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')


def export_input_size(args: argparse.Namespace) -> Tuple[int, int]:
    """The checked ``--input-size`` (224x224 by default for the classifier)."""
    size = parse_input_size(args.input_size, (224, 224) if args.task == 'classifier' else None,
                            f'--task {args.task}')
    check_input_size(size)
    return size


def load_for_export(args: argparse.Namespace) -> Tuple[nn.Module, InputNormalization]:
    """Build the config's model (eval mode) with the checkpoint, and read its normalisation."""
    cfg = load_model_config(args.config, args.cfg_options)
    norm = input_normalization(cfg)
    print(f'building {cfg.model.type} from {args.config}'
          + (f' with {args.checkpoint}' if args.checkpoint else ' (random weights)'))
    return build_model(cfg, args.checkpoint), norm


def run_tool(body: Callable[[], None], *errors: type) -> int:
    """Run a tool's body; the expected errors become one ``error:`` line and exit code 2."""
    try:
        body()
    except (ExportError, ConfigError) + errors as err:
        message = str(err)
        print(message if message.startswith('error:') else f'error: {message}', file=sys.stderr)
        return 2
    return 0
