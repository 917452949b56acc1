"""The weights ``tools/test.py`` evaluates: read before the Runner is built (a bad file stops the
run in one line), loaded into the built model after. The reading steps themselves are
:mod:`rapidnet_mm.checkpoints.loading`'s."""
import re

from mmengine.config import Config

from .checkpoints import CheckpointDownloadError, CheckpointLayoutError, fetch_checkpoint
from .checkpoints.loading import CheckpointWeights, load_into_model, read_checkpoint, to_our_layout
from .config import ConfigError


def read_test_weights(cfg: Config, checkpoint: str,
                      weights: str = 'ema') -> CheckpointWeights:
    """Read the weights ``tools/test.py`` evaluates: a local path or a URL (downloaded by
    :mod:`rapidnet_mm.checkpoints.hub`), in the authors' layout or ours.

    A checkpoint in our names becomes ``cfg.load_from`` (the local file), which mmengine's Runner
    loads as always, its hooks included (e.g. the EMA hook's swap). An authors' file is converted
    in memory, exactly as ``tools/model_converters/convert_official.py`` converts it, and
    :func:`load_test_weights` loads it into the built model.

    Args:
        cfg: The test config (``load_from`` is set here for checkpoints in our names).
        checkpoint: The path or URL given on the command line.
        weights: 'ema' or 'raw', for the authors' ImageNet files.

    Returns:
        The :class:`~rapidnet_mm.checkpoints.loading.CheckpointWeights` read.

    Raises:
        ConfigError: a missing file, a failed download, an unreadable file or one that fits no
            layout (its keys listed), or ``weights`` that does not apply to the file.
    """
    try:
        loaded = to_our_layout(read_checkpoint(checkpoint), weights=weights)
        if loaded.conversion is None:
            cfg.load_from = fetch_checkpoint(checkpoint)  # the local (cached) file
    except CheckpointLayoutError as err:
        raise ConfigError(f'{checkpoint}: {err}') from None
    except (FileNotFoundError, CheckpointDownloadError, ValueError) as err:
        raise ConfigError(str(err)) from None
    return loaded


def load_test_weights(runner, loaded: CheckpointWeights, checkpoint: str) -> None:
    """After :func:`~rapidnet_mm.preflight.build_runner`, before ``runner.test()``: load converted
    authors' weights strictly into the model; for a checkpoint in our names (loaded by mmengine from
    ``load_from``), stop if none of its tensors belongs to the model (a foreign file, keys
    listed), which mmengine's non-strict loading would only warn about.

    Raises:
        CheckpointLayoutError: a file that fits neither layout, or converted weights that do
            not fit the config's model (missing, unexpected or misshapen tensors listed).
    """
    from mmengine.model import is_model_wrapper

    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if loaded.conversion is not None:
        load_into_model(model, loaded, checkpoint)
        return
    own = set(model.state_dict())
    if not {re.sub(r'^module\.', '', k) for k in loaded.state_dict} & own:
        raise CheckpointLayoutError(
            f"{checkpoint} fits neither layout: not an authors' RapidNet checkpoint and none of "
            f"its tensors belongs to this config's {type(model).__name__}; its keys are",
            sorted(loaded.state_dict))
