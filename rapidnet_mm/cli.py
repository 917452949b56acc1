"""What the command-line tools share: turning expected errors into one ``error:`` line."""
import sys
from typing import Callable, Optional, Sequence, Tuple

from .config import ConfigError


def run_tool(body: Callable[[], None], *errors: type) -> int:
    """Run a tool's body; ConfigError and the given ``errors`` become one ``error:`` line on
    stderr and exit code 2."""
    try:
        body()
    except (ConfigError, ) + errors as err:
        message = str(err)
        print(message if message.startswith('error:') else f'error: {message}', file=sys.stderr)
        return 2
    return 0


def parse_input_size(values: Optional[Sequence[int]], default: Optional[Tuple[int, int]],
                     what: str) -> Tuple[int, int]:
    """``--input-size H W`` (or one value for a square) as a tuple, or ``default``."""
    if values is None:
        if default is None:
            raise ConfigError(f'{what} needs --input-size H W (e.g. --input-size 512 512)')
        return default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) != 2:
        raise ConfigError(f'--input-size takes H W (or one value for a square), got {values}')
    return int(values[0]), int(values[1])
