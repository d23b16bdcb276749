"""AWD-LSTM training options of the LM recipe (issue 7): variable BPTT, NT-ASGD, a wall-clock budget, test files,
the model-side regularisers passed to `RNNConfig`, and the AWD recipe files in `training/`.

Variable BPTT is checked against a hand-written awd-lstm-lm loop (lengths, learning-rate scaling, carried state);
NT-ASGD's trigger against its rule on constructed loss sequences, and its averaging against an average computed by
hand. Tiny models on the tiny corpus of test_language_modeling, on CPU, writing only under tmp_path.
"""

import copy
import functools
import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from conftest import VOCAB_SIZE, tiny_config
from lm_worker import recording_batches
from safetensors.torch import load_file
from test_language_modeling import arguments, assert_same_weights, corpus, weights  # noqa: F401 (corpus: a fixture)
from torch.utils.data import BatchSampler, SequentialSampler
from transformers import TrainerCallback

from hf_rnn import RNNConfig, RNNForCausalLM
from hf_rnn.language_modeling import (
    NT_ASGD_STATE_NAME,
    LanguageModelingTrainer,
    LanguageModelingTrainingArguments,
    StatefulLMTrainer,
    WeightAverage,
    awd_weight_init,
    build_stateful_dataset,
    main,
    model_config_options,
    parse_arguments,
    should_start_averaging,
    variable_bptt_lengths,
)

REPOSITORY = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "lm_worker.py"
AWD_FIELDS = {
    "word_dropout": 0.1,
    "weight_drop": 0.2,
    "locked_dropout": True,
    "activation_regularization": 2.0,
    "temporal_activation_regularization": 1.0,
}
AWD_OPTIONS = [option for name, value in AWD_FIELDS.items() for option in (f"--{name}", str(value).lower())]


def results(output_dir) -> dict:
    return json.loads((Path(output_dir) / "all_results.json").read_text())


def parameters(model) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def mean_of(snapshots: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([snapshot[name] for snapshot in snapshots]).mean(0) for name in snapshots[0]}


# ---------------------------------------------------------------------------------------------------------------------
# Variable BPTT
# ---------------------------------------------------------------------------------------------------------------------


def test_variable_bptt_lengths_follow_the_awd_rule_and_the_seed():
    lengths = variable_bptt_lengths(200_000, block_size=70, seed=141)
    assert lengths.sum() == 200_000
    assert lengths[:-1].min() >= 5 and lengths.max() <= 70 + 15  # AWD's floor; the cap bounds memory
    # mean 70 w.p. 0.95, else 35, then normal(mean, 5): the mean length is 68.25 (standard error about 0.2)
    assert lengths[:-1].mean() == pytest.approx(0.95 * 70 + 0.05 * 35, abs=1.0)
    assert 0.03 < (lengths[:-1] < 52).mean() < 0.07  # the half-length draws
    assert len(set(lengths.tolist())) > 20
    numpy.testing.assert_array_equal(lengths, variable_bptt_lengths(200_000, block_size=70, seed=141))
    assert not numpy.array_equal(lengths[:100], variable_bptt_lengths(200_000, block_size=70, seed=142)[:100])


def test_variable_bptt_layout_covers_every_stream_once_in_order_and_shards_by_process():
    """Every stream's rows, read in order, are its L - 1 inputs and targets exactly once; all rows of a segment (all
    processes' rows of one global batch) share one length; lengths vary; the same seed gives the same rows."""
    streams, stream_length = 4, 300
    tokens = list(range(1000, 1000 + streams * stream_length + 3))  # 3 dropped
    dataset = build_stateful_dataset(tokens, num_streams=streams, block_size=8, variable_length_seed=3)
    rows = dataset.to_dict()
    num_segments = len(dataset) // streams
    lengths = [len(rows["input_ids"][segment * streams]) for segment in range(num_segments)]
    assert len(set(lengths)) > 3 and sum(lengths) == stream_length - 1
    for stream in range(streams):
        indices = [segment * streams + stream for segment in range(num_segments)]
        assert [rows["stream_index"][i] for i in indices] == [stream] * num_segments
        assert [rows["segment_index"][i] for i in indices] == list(range(num_segments))
        assert [len(rows["input_ids"][i]) for i in indices] == lengths
        first = 1000 + stream * stream_length
        inputs = itertools.chain.from_iterable(rows["input_ids"][i] for i in indices)
        targets = itertools.chain.from_iterable(rows["shift_labels"][i] for i in indices)
        assert list(inputs) == list(range(first, first + stream_length - 1))
        assert list(targets) == list(range(first + 1, first + stream_length))

    again = build_stateful_dataset(tokens, num_streams=streams, block_size=8, variable_length_seed=3)
    assert again.to_dict() == rows
    other = build_stateful_dataset(tokens, num_streams=streams, block_size=8, variable_length_seed=4)
    assert [len(ids) for ids in other["input_ids"][::streams]] != lengths
    first_three = build_stateful_dataset(
        tokens, num_streams=streams, block_size=8, max_segments=3, variable_length_seed=3
    )
    assert first_three.to_dict() == dataset.select(range(3 * streams)).to_dict()

    per_device_batch, world_size = 2, 2  # streams = 2 x 2: process r owns streams 2r, 2r+1
    for process_index in range(world_size):
        batches = BatchSamplerShard(
            BatchSampler(SequentialSampler(dataset), per_device_batch, drop_last=False),
            num_processes=world_size,
            process_index=process_index,
        )
        for segment, batch in enumerate(batches):
            assert [rows["segment_index"][i] for i in batch] == [segment] * per_device_batch
            assert [rows["stream_index"][i] for i in batch] == [2 * process_index, 2 * process_index + 1]
            assert {len(rows["input_ids"][i]) for i in batch} == {lengths[segment]}


def awd_loop(model, data, lengths, block_size, epochs, accumulation, learning_rate, max_grad_norm):
    """awd-lstm-lm's training loop over [streams, length] `data` cut into `lengths`: the hidden state detached between
    batches and reset every epoch, gradients clipped, and the step's learning rate `lr * seq_len / bptt` (seq_len: the
    mean length of the step's segments; their losses weighted by length, one large batch). Returns the lrs used."""
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    starts = numpy.concatenate([[0], numpy.cumsum(lengths)])
    used = []
    model.train()
    for _ in range(epochs):
        hidden = None
        for first in range(0, len(lengths), accumulation):
            group = range(first, min(first + accumulation, len(lengths)))
            tokens = sum(lengths[segment] for segment in group)
            for segment in group:
                start, length = starts[segment], lengths[segment]
                output = model(data[:, start : start + length], cache=hidden, use_cache=True,
                               shift_labels=data[:, start + 1 : start + length + 1])  # fmt: skip
                (output.loss * length / tokens).backward()
                hidden = output.cache.detach()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.param_groups[0]["lr"] = learning_rate * (tokens / len(group)) / block_size
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            optimizer.zero_grad()
    return used


@pytest.mark.parametrize("cell_type, epochs, accumulation", [("lstm", 2, 1), ("gru", 1, 2)])
def test_variable_bptt_trains_like_the_awd_loop(tmp_path, cell_type, epochs, accumulation):
    generator = torch.Generator().manual_seed(0)
    streams, stream_length, block_size = 3, 90, 8
    tokens = torch.randint(3, VOCAB_SIZE, (streams * stream_length,), generator=generator)
    dataset = build_stateful_dataset(tokens.numpy(), streams, block_size, variable_length_seed=7)
    lengths = [len(ids) for ids in dataset["input_ids"][::streams]]
    assert len(set(lengths)) > 3

    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_config(cell_type))
    reference = copy.deepcopy(model)
    seen = []

    class Recording(StatefulLMTrainer):
        def _register_optimizer_hooks(self, optimizer):
            super()._register_optimizer_hooks(optimizer)  # the scaling pre-hook first, then this one
            optimizer.register_step_pre_hook(lambda optimizer, *_: seen.append(optimizer.param_groups[0]["lr"]))

    training_arguments = LanguageModelingTrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, per_device_train_batch_size=streams, num_train_epochs=epochs,
        gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant",
        max_grad_norm=0.5, seed=0,
    )  # fmt: skip
    trainer = Recording(model=model, args=training_arguments, train_dataset=dataset, block_size=block_size)
    trainer.train()

    expected_lrs = awd_loop(reference, tokens.view(streams, stream_length), lengths, block_size, epochs, accumulation,
                            learning_rate=0.5, max_grad_norm=0.5)  # fmt: skip
    assert seen == pytest.approx(expected_lrs, rel=1e-12)
    assert len(set(seen)) > 3  # the learning rate really varies with the length
    assert all(group["lr"] == 0.5 for group in trainer.optimizer.param_groups)  # restored after every step
    assert_same_weights(dict(model.named_parameters()), dict(reference.named_parameters()), atol=1e-6)


def test_variable_bptt_two_processes_train_like_one(corpus, tmp_path, hf_env):  # noqa: F811
    """torchrun with 2 rows per process against one process with 4: both cut the same 4 streams the same way; process r
    reads streams 2r, 2r+1 segment after segment, with the single process's length at every step, and the weights
    agree (each process's loss weighted and its learning rate scaled alike)."""
    options = ["--batching", "stateful", "--variable_bptt", "true", "--max_steps", "6", "--gradient_accumulation_steps",
               "2", "--optim", "sgd", "--learning_rate", "1.0", "--max_eval_samples", "8"]  # fmt: skip
    single = []
    with recording_batches(single):
        main(arguments(corpus, tmp_path / "one", *options))
    two = arguments(corpus, tmp_path / "two", *options, "--per_device_train_batch_size", "2",
                    "--per_device_eval_batch_size", "2", "--ddp_backend", "gloo")  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps({"runs": [{"argv": two, "record": str(tmp_path / "two")}]}))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
               str(tmp_path / "spec.json")]  # fmt: skip
    environment = dict(hf_env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPOSITORY))
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]

    per_rank = [json.loads((tmp_path / f"two_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == len(single) == 12
    assert len({len(record["input_ids"][0]) for record in single}) > 1  # the lengths vary
    for step, record in enumerate(single):
        assert record["segment"] == step and record["streams"] == [0, 1, 2, 3]
        for rank in (0, 1):
            assert per_rank[rank][step]["segment"] == step
            assert per_rank[rank][step]["streams"] == [2 * rank, 2 * rank + 1]
        assert per_rank[0][step]["input_ids"] + per_rank[1][step]["input_ids"] == record["input_ids"]
    assert_same_weights(weights(tmp_path / "two"), weights(tmp_path / "one"), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# NT-ASGD
# ---------------------------------------------------------------------------------------------------------------------


def first_trigger(losses: list[float], nonmono: int) -> int | None:
    """The 1-based evaluation at which `WeightAverage` starts averaging, fed `losses` at steps 1, 2, ..."""
    average = WeightAverage(nonmono)
    for step, loss in enumerate(losses, start=1):
        average.observe(loss, step)
    return average.start_step


def test_nt_asgd_trigger_follows_the_awd_rule():
    # worse than min(history[:-nonmono]) with more than nonmono earlier evaluations
    assert should_start_averaging([5, 4, 4.5, 4.6, 4.7, 4.8, 4.9], 4.1, nonmono=5)  # 4.1 > min(5, 4)
    assert not should_start_averaging([5, 4, 4.5, 4.6, 4.7, 4.8, 4.9], 4.0, nonmono=5)  # equal is not worse
    assert not should_start_averaging([5, 4, 4.5, 4.6, 4.7], 9.0, nonmono=5)  # only nonmono earlier evaluations
    assert should_start_averaging([5, 4, 4.5, 4.6, 4.7, 4.8], 9.0, nonmono=5)
    # improving forever: never; the 8th evaluation fires although it beats the last five (its window starts at 4)
    assert first_trigger([10 - step for step in range(20)], nonmono=5) is None
    assert first_trigger([5, 4, 4.5, 4.6, 4.7, 4.8, 4.9, 4.1, 3.0, 9.0], nonmono=5) == 8
    assert first_trigger([5, 4, 3, 3.5, 6, 7], nonmono=2) == 5  # min(5, 4) = 4 < 6; at 4: min(5) = 5 > 3.5
    assert first_trigger([3, 2, 4, 5], nonmono=1) == 3
    average = WeightAverage(nonmono=1)
    for step, loss in enumerate([3, 2, 4, 5, 9, 1], start=1):
        average.observe(loss, step)
    assert (average.start_step, average.losses) == (3, [3, 2, 4, 5, 9, 1])  # fires once, keeps the history


# Scripted validation losses by global step (nonmono 2): the evaluation after step 5 is worse than min(5, 4), the best
# before the last two, so averaging starts after step 5 and covers steps 6, 7, 8. The real evaluation still runs.
SCRIPTED_LOSSES = {1: 5.0, 2: 4.0, 3: 3.0, 4: 3.5, 5: 6.0}
TRIGGER_STEP = 5


def scripted_evaluation_loop(original, seen=None):
    @functools.wraps(original)
    def evaluation_loop(self, *args, **kwargs):
        if seen is not None:
            seen.append((self.state.global_step, parameters(self.model)))
        output = original(self, *args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        output.metrics[f"{prefix}_loss"] = SCRIPTED_LOSSES.get(self.state.global_step, 7.0)
        return output

    return evaluation_loop


def test_nt_asgd_evaluates_the_average_and_ends_with_it(tmp_path, monkeypatch):
    """After the trigger, evaluations see the mean of the parameters after every later step (computed here by hand),
    training continues from the model's own parameters, and the model ends holding the mean."""
    evaluated = []
    monkeypatch.setattr(
        LanguageModelingTrainer,
        "evaluation_loop",
        scripted_evaluation_loop(LanguageModelingTrainer.evaluation_loop, evaluated),
    )
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, VOCAB_SIZE, (3 * 60,), generator=generator).numpy()
    train_dataset = build_stateful_dataset(tokens, num_streams=3, block_size=5)
    eval_dataset = build_stateful_dataset(tokens[:48], num_streams=3, block_size=5)
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_config("lstm"))
    after_step, before_step = {}, {}

    class Recording(StatefulLMTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            before_step.setdefault(self.state.global_step + 1, parameters(self.model))
            return super().training_step(model, inputs, num_items_in_batch)

    training_arguments = LanguageModelingTrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, per_device_train_batch_size=3, per_device_eval_batch_size=3, max_steps=8, optim="sgd",
        learning_rate=0.5, lr_scheduler_type="constant", eval_strategy="steps", eval_steps=1, nt_asgd=True,
        nt_asgd_nonmono=2, seed=0,
    )  # fmt: skip

    class AfterStep(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            after_step[state.global_step] = parameters(model)  # before that step's evaluation

    trainer = Recording(model=model, args=training_arguments, train_dataset=train_dataset, eval_dataset=eval_dataset)
    trainer.add_callback(AfterStep())
    trainer.train()

    assert trainer.weight_average.start_step == TRIGGER_STEP and trainer.weight_average.count == 3
    assert [step for step, _ in evaluated] == list(range(1, 9))
    for step, seen in evaluated:
        if step <= TRIGGER_STEP:
            expected = after_step[step]  # the model's own parameters
        else:
            expected = mean_of([after_step[k] for k in range(TRIGGER_STEP + 1, step + 1)])
        assert_same_weights(seen, expected, atol=1e-6)
    for step in range(2, 9):  # every evaluation put the model's own parameters back before the next step
        assert_same_weights(before_step[step], after_step[step - 1])
    final = mean_of([after_step[k] for k in range(TRIGGER_STEP + 1, 9)])
    assert_same_weights(parameters(model), final, atol=1e-6)
    # the recipe's last evaluation (outside train()) neither swaps again nor feeds the trigger
    trainer.evaluate()
    assert_same_weights(evaluated[-1][1], final, atol=1e-6)
    assert len(trainer.weight_average.losses) == 8


def test_resume_with_variable_bptt_and_nt_asgd_ends_with_the_same_weights(corpus, tmp_path, monkeypatch):  # noqa: F811
    """Stateful, variable BPTT, NT-ASGD, gradient accumulation, dropouts and the AWD regularisers: resumed from a
    checkpoint before the trigger (the loss history decides it) and from one after it (the average goes on), the run
    ends with the uninterrupted run's weights, which are the average in the last checkpoint."""
    monkeypatch.setattr(
        LanguageModelingTrainer, "evaluation_loop", scripted_evaluation_loop(LanguageModelingTrainer.evaluation_loop)
    )
    common = ["--batching", "stateful", "--variable_bptt", "true", "--nt_asgd", "true", "--nt_asgd_nonmono", "2",
              "--optim", "sgd", "--learning_rate", "1.0", "--lr_scheduler_type", "constant", "--max_grad_norm", "0.25",
              "--max_steps", "8", "--gradient_accumulation_steps", "2", "--eval_strategy", "steps", "--eval_steps", "1",
              "--max_eval_samples", "8", "--save_strategy", "steps", "--save_steps", "2", "--embedding_dropout", "0.1",
              "--hidden_dropout", "0.1", "--output_dropout", "0.1", *AWD_OPTIONS]  # fmt: skip
    main(arguments(corpus, tmp_path / "uninterrupted", *common))
    uninterrupted = tmp_path / "uninterrupted"
    assert results(uninterrupted)["nt_asgd_start_step"] == TRIGGER_STEP
    before, after, last = (load_file(uninterrupted / f"checkpoint-{step}" / NT_ASGD_STATE_NAME) for step in (4, 6, 8))
    assert before["losses"].tolist() == [5.0, 4.0, 3.0, 3.5] and int(before["start_step"][0]) == -1
    assert int(after["start_step"][0]) == TRIGGER_STEP and int(after["count"][0]) == 1
    final = weights(uninterrupted)
    assert int(last["count"][0]) == 3
    averaged = {name[len("average.") :]: value for name, value in last.items() if name.startswith("average.")}
    assert_same_weights(final, averaged, atol=1e-6)  # every parameter (the tiny model ties none)
    raw = weights(uninterrupted / "checkpoint-8")  # the checkpoint keeps the SGD iterate, not the average
    assert any(not torch.equal(raw[name], final[name]) for name in averaged)

    for step in (4, 6):
        resumed = tmp_path / f"resumed-{step}"
        main(arguments(corpus, resumed, *common, "--resume_from_checkpoint", str(uninterrupted / f"checkpoint-{step}")))
        assert results(resumed)["nt_asgd_start_step"] == TRIGGER_STEP
        assert_same_weights(weights(resumed), final, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Time budget, test files, regularisers, argument checks
# ---------------------------------------------------------------------------------------------------------------------


def test_max_train_minutes_stops_at_the_first_step_past_the_budget(corpus, tmp_path, monkeypatch):  # noqa: F811
    forward = RNNForCausalLM.forward

    @functools.wraps(forward)  # Trainer reads the signature
    def slow_forward(self, *args, **kwargs):
        if self.training:
            time.sleep(0.02)  # a step surely longer than the 6 ms budget
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(RNNForCausalLM, "forward", slow_forward)
    common = ["--max_steps", "30", "--save_strategy", "steps", "--save_steps", "100"]
    main(arguments(corpus, tmp_path / "budget", *common, "--max_train_minutes", "0.0001"))
    stopped = results(tmp_path / "budget")
    assert stopped["train_steps"] == 1 and math.isfinite(stopped["eval_loss"])  # then evaluated and saved as usual
    assert (tmp_path / "budget" / "model.safetensors").is_file()
    assert (tmp_path / "budget" / "checkpoint-1").is_dir()  # a stop saves a checkpoint: the run can be continued
    main(arguments(corpus, tmp_path / "ample", *common, "--max_steps", "3", "--max_train_minutes", "10"))
    assert results(tmp_path / "ample")["train_steps"] == 3


@pytest.mark.parametrize("batching", ["blocks", "stateful"])
def test_test_files_add_test_metrics(corpus, tmp_path, batching):  # noqa: F811
    """The validation file given as test file too: the same rows, cut the same way, give the same loss."""
    output_dir = tmp_path / "lm"
    main(arguments(corpus, output_dir, "--batching", batching, "--max_steps", "2", "--test_files", corpus["valid"]))
    metrics = results(output_dir)
    assert metrics["test_loss"] == pytest.approx(metrics["eval_loss"], abs=1e-6)
    assert metrics["test_perplexity"] == pytest.approx(math.exp(metrics["test_loss"]))
    assert metrics["test_samples"] == metrics["eval_samples"]


def test_awd_options_reach_the_config_and_may_change_on_a_checkpoint(corpus, tmp_path):  # noqa: F811
    main(arguments(corpus, tmp_path / "new", "--max_steps", "1", "--layer_hidden_sizes", "12", "8", *AWD_OPTIONS))
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert {name: config[name] for name in AWD_FIELDS} == AWD_FIELDS
    assert config["layer_hidden_sizes"] == [12, 8]

    checkpoint = str(tmp_path / "new")
    main(arguments(corpus, tmp_path / "continued", "--max_steps", "1", "--model_name_or_path", checkpoint,
                   "--weight_drop", "0.3", "--activation_regularization", "0"))  # fmt: skip
    config = json.loads((tmp_path / "continued" / "config.json").read_text())
    assert (config["weight_drop"], config["activation_regularization"], config["word_dropout"]) == (0.3, 0.0, 0.1)
    with pytest.raises(ValueError, match="`weight_init`='awd' initialises a new model"):
        main(arguments(corpus, tmp_path / "refused", "--model_name_or_path", checkpoint, "--weight_init", "awd"))
    with pytest.raises(ValueError, match=r"layer_hidden_sizes=\[16, 8\] \(checkpoint: \[12, 8\]\)"):
        main(
            arguments(
                corpus, tmp_path / "refused", "--model_name_or_path", checkpoint, "--layer_hidden_sizes", "16", "8"
            )
        )
    assert not (tmp_path / "refused").exists()


def test_bad_awd_options_are_refused_before_training(corpus, tmp_path):  # noqa: F811
    output_dir = tmp_path / "out"
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    evaluated = ["--nt_asgd", "true", "--eval_strategy", "steps", "--save_strategy", "steps"]
    cases = [
        (["--variable_bptt", "true"], "`variable_bptt` .* needs `--batching stateful`"),
        (["--nt_asgd", "true"], "`nt_asgd` .* `eval_strategy` is 'no'"),
        (["--nt_asgd_nonmono", "0"], "`nt_asgd_nonmono` must be an integer of at least 1"),
        (["--max_train_minutes", "0"], "`max_train_minutes` must be a positive number"),
        ([*evaluated, "--load_best_model_at_end", "true"], "`load_best_model_at_end` would load"),
        (["--test_files", str(empty)], "`test_files`: the file .* is empty"),
        (["--test_files", str(tmp_path / "missing.txt")], "`test_files`: these files do not exist"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            main(arguments(corpus, output_dir, *options))
        assert not output_dir.exists()


def test_awd_weight_init_is_pytorchs_default_for_the_recurrent_layers():
    torch.manual_seed(0)
    model = awd_weight_init(RNNForCausalLM(tiny_config("lstm", layer_hidden_sizes=[16, 8], tie_word_embeddings=True)))
    recurrent = [module for module in model.modules() if isinstance(module, torch.nn.LSTM)]
    assert [module.hidden_size for module in recurrent] == [16, 8]
    for module in recurrent:
        bound = 1 / math.sqrt(module.hidden_size)
        for name, parameter in module.named_parameters():
            assert parameter.abs().max() <= bound, name  # biases too: no forget-gate bias of 1
            assert parameter.abs().max() > 0.8 * bound, name  # uniform over the whole range, not hf_rnn's init
    embedding = model.get_input_embeddings().weight.detach()
    assert embedding.abs().max() <= 0.1 and embedding.std() == pytest.approx(0.1 / math.sqrt(3), rel=0.15)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert not model.lm_head.bias.any()


# ---------------------------------------------------------------------------------------------------------------------
# The AWD-LSTM recipe files
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["awd_lstm_ptb.json", "awd_lstm_ptb_small.json"])
def test_awd_recipe_files_parse_into_valid_configs(name):
    model_args, data_args, training_args = parse_arguments([str(REPOSITORY / "training" / name)])
    config = RNNConfig(vocab_size=10002, **model_config_options(model_args))  # 9,998 PTB words + 4 special tokens
    assert config.cell_type == "lstm" and config.tie_word_embeddings and model_args.weight_init == "awd"
    assert config.layer_hidden_sizes[-1] == config.hidden_size == config.embedding_size
    assert len(config.layer_hidden_sizes) == config.num_hidden_layers
    assert config.locked_dropout is True and config.weight_drop > 0 and config.word_dropout > 0
    assert config.activation_regularization == 2.0 and config.temporal_activation_regularization == 1.0
    assert (data_args.batching, data_args.variable_bptt) == ("stateful", True)
    assert [Path(files[0]).name for files in (data_args.train_files, data_args.validation_files, data_args.test_files)] == [
        "train.txt", "valid.txt", "test.txt"
    ]  # fmt: skip
    assert all(files[0].startswith("../shared/data/ptb/") for files in (data_args.train_files, data_args.test_files))
    assert training_args.nt_asgd and training_args.nt_asgd_nonmono == 5
    assert (training_args.optim, training_args.lr_scheduler_type) == ("sgd", "constant")
    assert (training_args.learning_rate, training_args.max_grad_norm) == (30.0, 0.25)
    assert training_args.weight_decay == 1.2e-6
    if name == "awd_lstm_ptb.json":  # the paper's setup exactly
        assert (config.embedding_size, config.layer_hidden_sizes) == (400, [1150, 1150, 400])
        assert (config.embedding_dropout, config.hidden_dropout, config.output_dropout) == (0.4, 0.25, 0.4)
        assert (config.word_dropout, config.weight_drop) == (0.1, 0.5)
        assert (data_args.block_size, training_args.per_device_train_batch_size) == (70, 20)
        assert (training_args.num_train_epochs, training_args.eval_strategy, training_args.seed) == (500, "epoch", 141)
    else:  # evaluations every few steps, so that NT-ASGD can trigger within the 15-minute budget
        assert training_args.max_train_minutes == 15 and training_args.eval_strategy == "steps"
