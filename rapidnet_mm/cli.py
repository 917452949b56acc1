"""What the command-line tools share: the one entry that turns an expected error into one
``error:`` line and exit status 2 (:func:`run_tool`), the check of an output path before anything
is built (:func:`check_output_path`), and the options several tools take, each declared once."""
import argparse
import os
import os.path as osp
import re
import sys
import tempfile
from typing import Callable, List, Optional, Tuple

from mmengine.config import DictAction

from .checkpoints.loading import AUTHORS_WEIGHT_SETS
from .config import ConfigError
from .errors import DEBUG_ENV, OutputError, RapidNetError


def run_tool(body: Callable[[], Optional[int]], debug: bool = False) -> int:
    """Run a tool's body and return its exit status: what ``body`` returns (None: 0), or 2 for
    an expected error (:class:`~rapidnet_mm.errors.RapidNetError`), printed as one ``error:``
    line on stderr, as argparse does for bad arguments.

    ``debug`` (a tool's ``--debug``) or ``RAPIDNET_MM_DEBUG=1`` lets an expected error keep its
    traceback. Every other exception always keeps its traceback.
    """
    try:
        return body() or 0
    except RapidNetError as err:
        if debug or os.environ.get(DEBUG_ENV) == '1':
            raise
        print(f'error: {err}', file=sys.stderr)
        return 2


def check_output_path(path: str, option: str, folder: bool = False) -> None:
    """Refuse, before anything is built, an output whose folder cannot be created or written.

    The folder (``path`` itself when ``folder``, else the folder ``path`` is in) is created and
    a probe file written into it; the probe and every folder created for it are removed again,
    so nothing is left behind either way.

    Args:
        path: The output as given on the command line.
        option: How the command line names it (``--out``, ``DST``, ...), for the message.
        folder: True when ``path`` names a folder rather than a file.

    Raises:
        OutputError: a folder that cannot be created or written, or a file in its place.
    """
    target = osp.abspath(path) if folder else osp.dirname(osp.abspath(path))
    existing, missing = target, []
    while not osp.exists(existing):
        missing.append(existing)
        existing = osp.dirname(existing)
    if not osp.isdir(existing):
        if existing == osp.abspath(path):
            raise OutputError(f'{option} {path} is a file; name a folder')
        raise OutputError(f'{option} {path}: {existing} is a file, not a folder')
    try:
        os.makedirs(target, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write-check.', dir=target)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f'{option} {path}: cannot write into {target} '
                          f'({err.strerror or err}); name a folder you can write to') from None
    finally:
        for created in missing:  # deepest first
            try:
                os.rmdir(created)
            except OSError:  # never created, or meanwhile filled by another process
                pass


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...``: mmengine's overrides of config settings."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/train.py`` and ``tools/test.py`` (mmengine's Runner)."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: '
                        './work_dirs/<config name>)')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true',
                        help=f'show the full traceback of an expected error (or {DEBUG_ENV}=1) '
                        'instead of one error line')


def add_weights_option(parser: argparse.ArgumentParser, default: Optional[str] = 'ema') -> None:
    """``--weights ema|raw``: which of the two sets of the authors' ImageNet files to take."""
    parser.add_argument('--weights', choices=AUTHORS_WEIGHT_SETS, default=default,
                        help="the authors' ImageNet files hold two sets: 'ema' (state_dict_ema, "
                        "the default) or 'raw' (state_dict); other files hold one")


class _InputSize(argparse.Action):
    """``H W``, or one value for a square, stored as the tuple (H, W)."""

    def __call__(self, parser, namespace, values: List[int], option_string=None) -> None:
        if len(values) > 2:
            parser.error(f'{option_string} takes H W (or one value for a square), got '
                         f'{" ".join(map(str, values))}')
        setattr(namespace, self.dest, (values[0], values[-1]))


def add_input_size(parser: argparse.ArgumentParser, default: Optional[Tuple[int, int]],
                   help: str, deprecated: Tuple[str, ...] = ()) -> None:
    """``--input-size H W`` (or one value for a square), as a tuple in ``args.input_size``.

    Args:
        parser: The tool's parser.
        default: The size without the option; None when the tool decides (see
            :func:`input_size_or_default`).
        help: What the size is for, and its default.
        deprecated: Old spellings kept working for scripts (e.g. ``--shape``), noted as such in
            ``--help``.
    """
    parser.add_argument('--input-size', type=int, nargs='+', action=_InputSize,
                        default=default, metavar='N', help=help)
    for flag in deprecated:
        parser.add_argument(flag, type=int, nargs='+', action=_InputSize, dest='input_size',
                            metavar='N', help='deprecated: the old spelling of --input-size')


def input_size_or_default(size: Optional[Tuple[int, int]], default: Optional[Tuple[int, int]],
                          what: str) -> Tuple[int, int]:
    """``--input-size`` as given, else ``default``; ``what`` needs one when there is none."""
    if size is not None:
        return size
    if default is None:
        raise ConfigError(f'{what} needs --input-size H W (e.g. --input-size 512 512)')
    return default


def _device(value: str) -> str:
    if not re.fullmatch(r'cpu|cuda(:\d+)?', value):
        raise argparse.ArgumentTypeError(f'{value!r}: give cpu, cuda or cuda:<index>')
    return value


def add_device_option(parser: argparse.ArgumentParser, default: Optional[str],
                      help: str) -> None:
    """``--device cpu|cuda[:i]``."""
    parser.add_argument('--device', type=_device, default=default, metavar='cpu|cuda[:i]',
                        help=help)
