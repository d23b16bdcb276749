"""What every training command shares: parsing its dataclass arguments, and showing hf_rnn's log lines."""

import logging as python_logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import HfArgumentParser


def parse_dataclass_arguments(dataclass_types: tuple, argv: list[str] | None, description: str) -> tuple:
    """`argv` (default: `sys.argv[1:]`) as `--name value` options, or one `.json` file holding them all."""
    parser = HfArgumentParser(dataclass_types, description=description)
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        if not os.path.isfile(argv[0]):
            raise ValueError(f"The arguments file {argv[0]!r} does not exist.")
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    # look_for_args_file=False: never read a stray `<script>.args` file next to whatever program calls this
    return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)


@contextmanager
def command_logging(level: int = python_logging.INFO) -> Iterator[None]:
    """Show hf_rnn's log lines at `level` for the duration of a command, then restore the logging state.

    hf_rnn's loggers sit outside transformers' logger tree and have no handler; a program that configured logging
    already prints our records, so a handler is only added when the root logger has none. Restoring the state means
    that calling a command's `main` from another program leaves its logging as it was.
    """
    package_logger = python_logging.getLogger("hf_rnn")
    previous_level = package_logger.level
    handler = None
    if not python_logging.getLogger().handlers:
        handler = python_logging.StreamHandler(sys.stderr)
        handler.setFormatter(python_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        yield
    finally:
        package_logger.setLevel(previous_level)
        if handler is not None:
            package_logger.removeHandler(handler)
