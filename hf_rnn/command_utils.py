"""What every training command shares: parsing its dataclass arguments, showing hf_rnn's log lines, and keeping
glibc's allocator from handing memory back to the kernel between training steps."""

import ctypes
import logging as python_logging
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import HfArgumentParser
from transformers.utils import logging


logger = logging.get_logger(__name__)


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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Environment variables by which a user sets glibc's allocator (or replaces it); any of them means: leave it alone.
_USER_ALLOCATOR_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                             "GLIBC_TUNABLES", "LD_PRELOAD")  # fmt: skip
MALLOC_TUNING_VARIABLE = "HF_RNN_MALLOC_TUNING"


def tune_glibc_malloc(mmap_threshold: int = 512 * 2**20, trim_threshold: int = 1024 * 2**20) -> bool:
    """Let glibc keep freed memory in the process for reuse instead of returning it to the kernel after every step.

    Why: a CPU training step allocates and frees the same large tensors every time (logits and their gradient:
    batch x length x vocabulary floats, 28 MB for 20 x 35 x 10k). glibc serves blocks above its mmap threshold
    (dynamic, at most 32 MB) with fresh mmaps, and trims the heap's free top above the trim threshold, so depending
    on the heap's layout each step may fault every page of them in again. On PTB (2 x 200 LSTM, 2 cores) that was
    8 million page faults for 300 steps, 18 s of system time and 27% fewer steps per second than the same process
    after this call. Raising both thresholds (the value of `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_`)
    keeps that memory mapped: the resident size stays at its peak, which a training process reaches anyway.

    Applied by the training commands (`hf-rnn train-lm`, `hf-rnn train-classifier`); Python programs may call it
    themselves. It does nothing (and returns False) off glibc, when the environment already configures the
    allocator (`MALLOC_*_`, `GLIBC_TUNABLES`, or `LD_PRELOAD`, e.g. jemalloc or tcmalloc), or when
    `HF_RNN_MALLOC_TUNING=0`. Returns True when both thresholds were set.
    """
    if os.environ.get(MALLOC_TUNING_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(os.environ.get(name) for name in _USER_ALLOCATOR_VARIABLES):
        return False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
        applied = libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1 and applied
    except (OSError, AttributeError):
        return False
    if applied:
        logger.info(
            f"glibc malloc keeps freed blocks up to {mmap_threshold // 2**20} MiB for reuse between steps "
            f"({MALLOC_TUNING_VARIABLE}=0 leaves the allocator as it is)."
        )
    return applied
