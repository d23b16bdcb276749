"""Faults lose nothing (issue 6): the LM recipe killed with SIGKILL, during training or in the middle of a checkpoint
save, resumes with `--resume_from_checkpoint true` from its last complete checkpoint and ends with the weights of an
uninterrupted run with the same seed.

The killed runs are real subprocesses of a small driver (`DRIVER`, written to tmp_path) that runs
`hf_rnn.language_modeling.main` and kills itself at a chosen point; the fault injection lives in the driver only.
Stateful TBPTT with dropout on: the resumed run must restore the weights, the optimizer, the random state and the
carried recurrent state of a checkpoint in the middle of an epoch.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from test_language_modeling import arguments, assert_same_weights, corpus, weights  # noqa: F401 (corpus: a fixture)

from hf_rnn.language_modeling import TEMPORARY_CHECKPOINT_PREFIX, last_complete_checkpoint, main, tbptt_state_file_name

REPOSITORY = Path(__file__).resolve().parents[1]

# 20 rows = 5 segments of 4 streams per epoch, one segment per step, 2 epochs: 10 steps; checkpoints every 2 steps,
# the last 2 kept. Dropout on, so the random state matters too.
COMMON = ["--batching", "stateful", "--max_train_samples", "20", "--num_train_epochs", "2", "--save_strategy", "steps",
          "--save_steps", "2", "--save_total_limit", "2", "--embedding_dropout", "0.1", "--hidden_dropout", "0.1",
          "--max_eval_samples", "8", "--dataloader_num_workers", "0"]  # fmt: skip
TOTAL_STEPS = 10

DRIVER = '''
"""Run the LM recipe and SIGKILL this process at the point FAULT names:
"after_step:K"   at the end of optimizer step K (before any checkpoint of that step),
"weights:K"      while saving checkpoint K: model.safetensors written half, then killed,
"before_rename:K" while saving checkpoint K: every file written (trainer_state.json last), then killed."""
import os, signal, sys

import transformers.modeling_utils
import transformers.trainer_callback
from transformers import TrainerCallback

from hf_rnn import language_modeling

point, step = os.environ["FAULT"].split(":")
step = int(step)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def in_checkpoint(path):
    return os.path.basename(os.path.dirname(os.path.abspath(path))).endswith(f"checkpoint-{step}")


class KillAfterStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if point == "after_step" and state.global_step == step:
            die()


def with_callback(trainer_class):
    class Killing(trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(KillAfterStep())
    return Killing


language_modeling.LanguageModelingTrainer = with_callback(language_modeling.LanguageModelingTrainer)
language_modeling.StatefulLMTrainer = with_callback(language_modeling.StatefulLMTrainer)

save_weights = transformers.modeling_utils.safe_save_file


def save_weights_then_die(tensors, filename, metadata=None):
    save_weights(tensors, filename, metadata=metadata)
    if point == "weights" and in_checkpoint(filename):
        with open(filename, "r+b") as file:
            file.truncate(os.path.getsize(filename) // 2)
        die()


transformers.modeling_utils.safe_save_file = save_weights_then_die

save_state = transformers.trainer_callback.TrainerState.save_to_json


def save_state_then_die(self, json_path):
    save_state(self, json_path)
    if point == "before_rename" and in_checkpoint(json_path):
        die()


transformers.trainer_callback.TrainerState.save_to_json = save_state_then_die

sys.exit(language_modeling.main(sys.argv[1:]))
'''


@contextlib.contextmanager
def one_thread():
    """As the killed subprocesses run (OMP_NUM_THREADS=1), so that float sums come in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> dict[str, torch.Tensor]:  # noqa: F811
    """The final weights of the run left alone (in process: same seed, same tiny model)."""
    output_dir = tmp_path_factory.mktemp("faults") / "uninterrupted"
    with one_thread():
        main(arguments(corpus, output_dir, *COMMON))
    return weights(output_dir)


def run_killed(corpus, tmp_path, hf_env, fault: str) -> Path:  # noqa: F811
    """Run the recipe in a subprocess that SIGKILLs itself at `fault`; returns its output_dir."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    output_dir = tmp_path / "run"
    environment = dict(hf_env, FAULT=fault, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPOSITORY))
    result = subprocess.run(
        [sys.executable, str(driver), *arguments(corpus, output_dir, *COMMON)],
        check=False, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-3000:])
    assert not (output_dir / "model.safetensors").exists()  # it died before the end
    return output_dir


def resume(corpus, output_dir: Path) -> None:  # noqa: F811
    with one_thread():
        main(arguments(corpus, output_dir, *COMMON, "--resume_from_checkpoint", "true"))


def checkpoints(output_dir: Path) -> list[str]:
    return sorted(path.name for path in output_dir.iterdir() if "checkpoint" in path.name)


def assert_complete(checkpoint: Path) -> None:
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                 tbptt_state_file_name(0, 1)):  # fmt: skip
        assert (checkpoint / name).is_file(), name


def test_sigkill_during_training_resumes_to_the_same_weights(corpus, tmp_path, hf_env, uninterrupted):  # noqa: F811
    """Killed at the end of step 7: checkpoint-6 (mid second epoch, a carried state) is the last; rotation kept 4
    and 6. Resuming trains steps 7 to 10 again and ends where the uninterrupted run did."""
    output_dir = run_killed(corpus, tmp_path, hf_env, "after_step:7")
    assert checkpoints(output_dir) == ["checkpoint-4", "checkpoint-6"]
    assert_complete(output_dir / "checkpoint-6")
    assert last_complete_checkpoint(output_dir) == str(output_dir / "checkpoint-6")

    resume(corpus, output_dir)
    assert_same_weights(weights(output_dir), uninterrupted, atol=1e-6)
    assert checkpoints(output_dir) == ["checkpoint-10", "checkpoint-8"]  # rotation still keeps the last 2
    state = json.loads((output_dir / "checkpoint-10" / "trainer_state.json").read_text())
    assert state["global_step"] == TOTAL_STEPS


@pytest.mark.parametrize("point", ["weights", "before_rename"])
def test_sigkill_while_saving_leaves_no_checkpoint_that_looks_complete(
    corpus,  # noqa: F811
    tmp_path,
    hf_env,
    uninterrupted,
    point,
):
    """Killed while saving checkpoint-4: half-way through writing the weights, or with every file written but the
    folder not yet renamed. Only a tmp-checkpoint-4 is left, which nothing takes for a checkpoint; resuming picks
    checkpoint-2, removes the leftover at its next save and ends with the uninterrupted run's weights."""
    output_dir = run_killed(corpus, tmp_path, hf_env, f"{point}:4")
    leftover = output_dir / f"{TEMPORARY_CHECKPOINT_PREFIX}-4"
    assert checkpoints(output_dir) == ["checkpoint-2", leftover.name]
    if point == "weights":  # the file really was cut short: loading it would fail or give wrong weights
        assert not (leftover / "trainer_state.json").exists()
        with pytest.raises(SafetensorError):
            weights(leftover)
    else:
        assert_complete(leftover)
    assert last_complete_checkpoint(output_dir) == str(output_dir / "checkpoint-2")

    resume(corpus, output_dir)
    assert_same_weights(weights(output_dir), uninterrupted, atol=1e-6)
    assert checkpoints(output_dir) == ["checkpoint-10", "checkpoint-8"]  # the leftover is gone


def test_last_complete_checkpoint_passes_over_partial_folders(tmp_path):
    """A checkpoint-N without trainer_state.json (part-written by a writer that saves in place) and tmp folders are
    passed over; other names are ignored."""
    for name, complete in (("checkpoint-2", True), ("checkpoint-10", True), ("checkpoint-12", False),
                           (f"{TEMPORARY_CHECKPOINT_PREFIX}-14", True), ("checkpoint-x", True)):  # fmt: skip
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-20").write_text("a file, not a folder")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert last_complete_checkpoint(tmp_path / "missing") is None
    os.remove(tmp_path / "checkpoint-10" / "trainer_state.json")
    os.remove(tmp_path / "checkpoint-2" / "trainer_state.json")
    assert last_complete_checkpoint(tmp_path) is None
