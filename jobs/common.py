"""What every job shares: turning the project's errors into one clear line and exit code 2."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from core.errors import SentimentError


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # `kill` and `timeout` end a job the way Ctrl-C does: runs marked, files closed


def run_main(main: Callable[[list[str] | None], int]) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main(None)
    except SentimentError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted: everything committed so far is kept; run the same command again to continue",
              file=sys.stderr)
        code = 130
    sys.exit(code)


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number no smaller than ``minimum`` (argparse names the option)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
