"""Writing output folders all or nothing: a failed or interrupted run never leaves a folder that looks complete."""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


# A folder holding one of these was written by save_pretrained: the only kind `overwrite=True` may replace.
_SAVED_FOLDER_MARKERS = ("config.json", "tokenizer_config.json")


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool, input_path: str | os.PathLike | None = None):
    """Refuse an `output_dir` that exists and is not empty unless `overwrite` is set and it holds a saved model or
    tokenizer (never, say, the current directory) that does not contain `input_path`."""
    output_dir = Path(output_dir).absolute()
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"`output_dir` {str(output_dir)!r} exists and is not a folder.")
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"`output_dir` {str(output_dir)!r} already exists and is not empty; choose another folder or pass "
            "`overwrite=True` (`--overwrite`) to replace it."
        )
    if not any((output_dir / marker).is_file() for marker in _SAVED_FOLDER_MARKERS):
        raise ValueError(
            f"`overwrite=True` replaces only a folder holding a saved model or tokenizer, but `output_dir` "
            f"{str(output_dir)!r} has no {' or '.join(_SAVED_FOLDER_MARKERS)}; choose an empty or new folder."
        )
    if input_path is not None and output_dir.resolve() in Path(input_path).resolve().parents:
        raise ValueError(f"`output_dir` {str(output_dir)!r} holds the input file: it cannot be overwritten.")


@contextmanager
def atomic_output_dir(
    output_dir: str | os.PathLike, overwrite: bool = False, input_path: str | os.PathLike | None = None
) -> Iterator[Path]:
    """Yield a staging folder `.{name}.tmp-*` next to `output_dir`; rename it to `output_dir` when the block ends
    without error (a rename is all or nothing), delete it otherwise.

    ```python
    with atomic_output_dir("out") as staging:
        model.save_pretrained(staging)
    ```
    """
    output_dir = Path(output_dir).absolute()
    check_output_dir(output_dir, overwrite, input_path)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.with_name(f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
        replace_with(staging, output_dir, overwrite, input_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_with(
    staging: str | os.PathLike, output_dir: str | os.PathLike, overwrite: bool, input_path: str | os.PathLike | None = None
) -> None:
    """Rename the complete folder `staging` to `output_dir` (replacing it only as `check_output_dir` allows)."""
    staging, output_dir = Path(staging), Path(output_dir).absolute()
    check_output_dir(output_dir, overwrite, input_path)  # again: the folder may have appeared meanwhile
    if not output_dir.is_dir():
        os.rename(staging, output_dir)
        return
    # os.rename cannot replace a non-empty folder: move the old one aside, then delete it
    backup = output_dir.with_name(f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(output_dir, backup)
    try:
        os.rename(staging, output_dir)
    except BaseException:
        os.rename(backup, output_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def drop_pickled_training_arguments(folder: str | os.PathLike) -> None:
    """Remove `training_args.bin`, which `Trainer.save_model` writes with pickle, from a folder meant for publishing:
    a model folder holds safe formats only (the recipes record the arguments in all_results.json and the card).
    Checkpoints keep theirs, since `resume_from_checkpoint` reads it from the user's own run."""
    (Path(folder) / "training_args.bin").unlink(missing_ok=True)
