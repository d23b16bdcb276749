"""The causal LM recipe (hf_rnn.language_modeling): both batching modes end to end, stateful TBPTT against a
hand-written loop, exact resumption, two processes against one, and bad input.

Every run is a tiny model on a tiny word-level corpus, on CPU, reporting nowhere, writing only under tmp_path.
"""

import copy
import functools
import importlib.util
import json
import math
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from safetensors.torch import load_file
from torch.utils.data import BatchSampler, SequentialSampler
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from conftest import TINY_WORDS, VOCAB_SIZE, tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM
from hf_rnn.language_modeling import (
    StatefulLMTrainer,
    build_stateful_dataset,
    main,
    tbptt_state_file_name,
)
from lm_worker import recording_batches


REPOSITORY = Path(__file__).resolve().parents[1]
SCRIPT = REPOSITORY / "training" / "train_causal_lm.py"
WORKER = Path(__file__).resolve().parent / "lm_worker.py"


# ---------------------------------------------------------------------------------------------------------------------
# A tiny corpus and tokenizer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    """train.txt (150 lines), valid.txt (40 lines) of words of the tiny tokenizer, and that tokenizer saved."""
    folder = tmp_path_factory.mktemp("corpus")
    generator = random.Random(0)
    words = TINY_WORDS[4:]  # no special tokens in the text
    for name, lines in (("train.txt", 150), ("valid.txt", 40)):
        text = "\n".join(" ".join(generator.choices(words, k=generator.randint(4, 14))) for _ in range(lines))
        (folder / name).write_text(text + "\n", encoding="utf-8")
    tiny_tokenizer().save_pretrained(folder / "tokenizer")
    return {
        "train": str(folder / "train.txt"),
        "valid": str(folder / "valid.txt"),
        "tokenizer": str(folder / "tokenizer"),
        "folder": str(folder),
    }


def arguments(corpus, output_dir, *extra) -> list[str]:
    """A tiny 2-layer LSTM (8 wide) on the tiny corpus; `extra` options override these (argparse: the last wins)."""
    return [
        "--train_files", corpus["train"],
        "--validation_files", corpus["valid"],
        "--tokenizer_name_or_path", corpus["tokenizer"],
        "--embedding_size", "8",
        "--hidden_size", "8",
        "--num_hidden_layers", "2",
        "--block_size", "8",
        "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4",
        "--learning_rate", "0.01",
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--report_to", "none",
        "--use_cpu", "true",
        "--disable_tqdm", "true",
        "--seed", "0",
        "--cache_dir", os.path.join(corpus["folder"], "datasets_cache"),
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def without_tokenizer(options: list[str]) -> list[str]:
    """The options without `--tokenizer_name_or_path`: the recipe then trains a byte-level BPE on the train split."""
    position = options.index("--tokenizer_name_or_path")
    return options[:position] + options[position + 2 :]


def json_value(text: str):
    """A command-line value as a JSON file holds it: 8 -> 8, 0.01 -> 0.01, true -> True, paths stay strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(folder, "model.safetensors"))


def assert_same_weights(actual: dict, expected: dict, atol: float = 0.0) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, atol=atol, rtol=0.0, msg=name)


def assert_nothing_written(output_dir: Path) -> None:
    assert not output_dir.exists()
    assert not list(output_dir.parent.glob(f".{output_dir.name}*"))  # no staging folder either


# ---------------------------------------------------------------------------------------------------------------------
# End to end, in a real subprocess
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["blocks", "stateful"])
def test_recipe_runs_end_to_end_in_a_subprocess(corpus, tmp_path, hf_env, batching):
    """blocks: training/train_causal_lm.py with a BPE tokenizer trained by the recipe; stateful: `hf-rnn train-lm`
    with one JSON argument file and the given tokenizer. The folder loads with the Auto classes and generates."""
    output_dir = tmp_path / "lm"
    options = arguments(corpus, output_dir, "--batching", batching, "--max_steps", "6", "--eval_strategy", "steps",
                        "--eval_steps", "3")  # fmt: skip
    if batching == "blocks":
        command = [sys.executable, str(SCRIPT), *without_tokenizer(options), "--tokenizer_vocab_size", "300"]
    else:
        names, values = options[0::2], options[1::2]
        spec = {name[2:]: json_value(value) for name, value in zip(names, values)}
        spec["train_files"], spec["validation_files"] = [spec["train_files"]], [spec["validation_files"]]
        (tmp_path / "arguments.json").write_text(json.dumps(spec), encoding="utf-8")
        command = [sys.executable, "-m", "hf_rnn.cli", "train-lm", str(tmp_path / "arguments.json")]
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=hf_env, cwd=REPOSITORY, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "perplexity" in result.stdout
    if sys.platform == "linux" and platform.libc_ver()[0] == "glibc" and "MALLOC_TRIM_THRESHOLD_" not in hf_env:
        assert "glibc malloc keeps freed blocks" in result.stderr  # the command tuned the allocator

    saved = {path.name for path in output_dir.iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "all_results.json", "README.md"}  # fmt: skip
    if importlib.util.find_spec("matplotlib") is not None:  # the optional `train` extra draws the loss curve
        expected.add("loss_curve.png")
    assert expected <= saved
    assert "training_args.bin" not in saved  # Trainer pickles it: a published folder holds safe formats only
    assert not list(tmp_path.glob(".lm*"))  # the staging folder is gone
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]))
    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "perplexity" in card.lower()
    generation_config = json.loads((output_dir / "generation_config.json").read_text())
    assert generation_config["do_sample"] is True and generation_config["eos_token_id"] is not None

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    assert isinstance(model, RNNForCausalLM) and model.config.vocab_size == len(tokenizer)
    assert model.config.use_cache is True
    assert generation_config["eos_token_id"] == tokenizer.eos_token_id
    inputs = tokenizer("the cat", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 5) or tokenizer.eos_token_id in generated[0]


# ---------------------------------------------------------------------------------------------------------------------
# Stateful layout and state carrying
# ---------------------------------------------------------------------------------------------------------------------


def test_stateful_layout_rows_continue_their_stream_and_shard_by_process():
    """Row (t, s) holds tokens [t*bptt, (t+1)*bptt) of stream s, targets one further; with B rows per batch and W
    processes, accelerate's BatchSamplerShard gives process r segment j of streams r*B .. r*B+B-1 at its j-th batch."""
    tokens = list(range(1000, 1000 + 203))  # 203 tokens: 4 streams of 50 (3 dropped), 6 segments of 8
    dataset = build_stateful_dataset(tokens, num_streams=4, block_size=8)
    stream_length, num_segments = 50, (50 - 1) // 8
    assert len(dataset) == num_segments * 4
    for row in range(len(dataset)):
        segment, stream = divmod(row, 4)
        assert dataset[row]["segment_index"] == segment and dataset[row]["stream_index"] == stream
        start = stream * stream_length + segment * 8
        assert dataset[row]["input_ids"] == tokens[start : start + 8]
        assert dataset[row]["shift_labels"] == tokens[start + 1 : start + 9]
        if segment > 0:  # the row continues row t-1 of its stream, and that row's last target is its first token
            previous = dataset[row - 4]
            assert previous["input_ids"][-1] + 1 == dataset[row]["input_ids"][0]
            assert previous["shift_labels"][-1] == dataset[row]["input_ids"][0]

    per_device_batch, world_size = 2, 2
    for process_index in range(world_size):
        batches = BatchSamplerShard(
            BatchSampler(SequentialSampler(dataset), per_device_batch, drop_last=False),
            num_processes=world_size,
            process_index=process_index,
        )
        batches = list(batches)
        assert len(batches) == num_segments
        for segment, batch in enumerate(batches):
            rows = [dataset[index] for index in batch]
            assert {row["segment_index"] for row in rows} == {segment}
            owned = list(range(process_index * per_device_batch, (process_index + 1) * per_device_batch))
            assert [row["stream_index"] for row in rows] == owned

    with pytest.raises(ValueError, match="too few"):
        build_stateful_dataset(list(range(30)), num_streams=4, block_size=8)


def hand_written_tbptt(model, data, bptt, epochs, accumulation, learning_rate, max_grad_norm):
    """pytorch/examples word_language_model's loop: `data` is [streams, length]; batch t = columns [t*bptt, ...), the
    hidden state repackaged (detached) between batches and reset every epoch; SGD, clipping, accumulation."""
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    num_segments = (data.shape[1] - 1) // bptt
    model.train()
    for _ in range(epochs):
        hidden = None
        for first in range(0, num_segments, accumulation):
            group = range(first, min(first + accumulation, num_segments))
            for segment in group:
                inputs = data[:, segment * bptt : (segment + 1) * bptt]
                targets = data[:, segment * bptt + 1 : (segment + 1) * bptt + 1]
                output = model(inputs, cache=hidden, use_cache=True, shift_labels=targets)
                (output.loss / len(group)).backward()
                hidden = output.cache.detach()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
    return model


def hand_written_evaluation(model, data, bptt):
    model.eval()
    hidden, losses = None, []
    with torch.no_grad():
        for segment in range((data.shape[1] - 1) // bptt):
            inputs = data[:, segment * bptt : (segment + 1) * bptt]
            targets = data[:, segment * bptt + 1 : (segment + 1) * bptt + 1]
            output = model(inputs, cache=hidden, use_cache=True, shift_labels=targets)
            losses.append(output.loss)
            hidden = output.cache
    return torch.stack(losses).mean().item()


@pytest.mark.parametrize(
    "cell_type, epochs, accumulation", [("lstm", 2, 1), ("gru", 1, 2)], ids=["lstm-2-epochs", "gru-accumulation-2"]
)
def test_stateful_trainer_matches_hand_written_tbptt_loop(tmp_path, cell_type, epochs, accumulation):
    """StatefulLMTrainer trains exactly as word_language_model's loop: every batch starts from the detached state the
    previous batch of its streams ended with (zeros at each epoch start), and the final weights agree; evaluation
    carries its own state over the validation streams and starts afresh at every evaluate()."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, VOCAB_SIZE, (3 * 36 + 2,), generator=generator)  # 3 streams of 36: 7 segments of 5
    streams, bptt = 3, 5
    train_dataset = build_stateful_dataset(tokens.numpy(), num_streams=streams, block_size=bptt)
    eval_tokens = torch.randint(3, VOCAB_SIZE, (3 * 16,), generator=generator)
    eval_dataset = build_stateful_dataset(eval_tokens.numpy(), num_streams=streams, block_size=bptt)

    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_config(cell_type, hidden_dropout=0.0))
    reference = copy.deepcopy(model)

    starts, ends, batches = [], [], []

    def layer_states(cache):
        return [state.clone() for i in range(len(cache.layers)) for state in cache.get_layer_state(i)]

    def before(module, args, kwargs):
        if module.training:
            cache = kwargs.get("cache")
            starts.append(None if cache is None else layer_states(cache))
            batches.append(kwargs["input_ids"].clone())

    def after(module, args, kwargs, output):
        if module.training:
            ends.append(layer_states(output.cache))
            assert all(not state.requires_grad for state in layer_states(output.cache.detach()))

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)
    arguments = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no",
        disable_tqdm=True, per_device_train_batch_size=streams, per_device_eval_batch_size=streams,
        num_train_epochs=epochs, gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=0.5,
        lr_scheduler_type="constant", max_grad_norm=0.5, seed=0,
    )  # fmt: skip
    trainer = StatefulLMTrainer(model=model, args=arguments, train_dataset=train_dataset, eval_dataset=eval_dataset)
    trainer.train()

    # The rows each batch held: batch t of an epoch is columns [t*bptt, (t+1)*bptt) of the [streams, length] layout.
    data = tokens[: streams * 36].view(streams, 36)
    num_segments = (36 - 1) // bptt
    assert len(batches) == epochs * num_segments
    for index, batch in enumerate(batches):
        segment = index % num_segments
        assert torch.equal(batch, data[:, segment * bptt : (segment + 1) * bptt])
        if segment == 0:
            assert starts[index] is None  # zeros at the start of every epoch
        else:
            for started, ended in zip(starts[index], ends[index - 1]):
                assert torch.equal(started, ended)  # the state the previous batch of these streams ended with

    expected = hand_written_tbptt(reference, data, bptt, epochs, accumulation, learning_rate=0.5, max_grad_norm=0.5)
    assert_same_weights(dict(model.named_parameters()), dict(expected.named_parameters()), atol=1e-6)

    expected_loss = hand_written_evaluation(expected, eval_tokens.view(streams, 16), bptt)
    first, second = trainer.evaluate()["eval_loss"], trainer.evaluate()["eval_loss"]
    assert first == pytest.approx(expected_loss, abs=1e-6)
    assert second == first  # each evaluate() starts its streams from zeros again


# ---------------------------------------------------------------------------------------------------------------------
# Resuming from a checkpoint
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batching, extra",
    [
        ("blocks", ["--max_steps", "6"]),
        # 5 segments of 4 streams per epoch, 2 micro-batches per step: steps of 2, 2, 1 segments; checkpoint-2 is
        # mid-epoch (the carried state must be restored), and the run goes on through an epoch start
        ("stateful", ["--max_train_samples", "20", "--gradient_accumulation_steps", "2", "--num_train_epochs", "2"]),
    ],
)
def test_resume_from_checkpoint_ends_with_the_same_weights(corpus, tmp_path, monkeypatch, batching, extra):
    """Dropout is on, so the random state must be restored too; the resumed run trains only the remaining batches."""
    training_batches = []
    forward = RNNForCausalLM.forward

    @functools.wraps(forward)  # Trainer reads the forward's signature to choose the columns it keeps
    def counting_forward(self, *args, **kwargs):
        if self.training:
            training_batches.append(kwargs["input_ids"].shape)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(RNNForCausalLM, "forward", counting_forward)
    common = ["--batching", batching, "--save_strategy", "steps", "--save_steps", "2", "--embedding_dropout", "0.1",
              "--hidden_dropout", "0.1", *extra]  # fmt: skip
    main(arguments(corpus, tmp_path / "uninterrupted", *common))
    uninterrupted_batches = len(training_batches)
    checkpoint = tmp_path / "uninterrupted" / "checkpoint-2"
    if batching == "stateful":
        assert (checkpoint / tbptt_state_file_name(0, 1)).is_file()
    training_batches.clear()
    main(arguments(corpus, tmp_path / "resumed", *common, "--resume_from_checkpoint", str(checkpoint)))
    skipped = 4 if batching == "stateful" else 2  # 2 optimizer steps of 2 or 1 micro-batches
    assert (uninterrupted_batches, len(training_batches)) == ((10, 6) if batching == "stateful" else (6, 4))
    assert len(training_batches) == uninterrupted_batches - skipped
    assert_same_weights(weights(tmp_path / "resumed"), weights(tmp_path / "uninterrupted"))
    for name in ("resumed", "uninterrupted"):
        state = json.loads((tmp_path / name / "checkpoint-6" / "trainer_state.json").read_text())
        assert state["global_step"] == 6


# ---------------------------------------------------------------------------------------------------------------------
# Two processes
# ---------------------------------------------------------------------------------------------------------------------


def test_two_processes_train_like_one_with_the_same_global_batch(corpus, tmp_path, hf_env):
    """`torchrun --nproc_per_node 2` (gloo, CPU) with 2 rows per process against one process with 4 rows.

    blocks: the same global batches (accelerate deals a sampler's batches round-robin and the data-loading seed is
    shared), the loss normalised by the token count over both processes, gradients averaged by DDP: the weights agree
    to 1e-5 (float sums in another order).

    stateful: the number of streams is per-device batch x processes, so with the same global batch (4) both runs cut
    the same 4 streams, and each process must own its 2 (process r: streams 2r, 2r+1) and read them segment after
    segment; the union of the rows both processes trained on is then exactly the single process's, batch for batch.
    Each row's state depends on its own stream only and every process has the same number of target tokens, so the
    mean loss and the averaged gradients are the single process's too: the weights agree to 1e-5 as well. (With the
    same per-device batch instead, the runs would cut 2 vs 4 streams: different data, nothing comparable.)
    Dropout is off: each process draws its own masks. A third run trains its tokenizer: the main process trains it and
    sends it to the other, and it is the single process's.
    """
    settings = {
        "blocks": ["--batching", "blocks", "--max_steps", "4"],
        "stateful": ["--batching", "stateful", "--max_steps", "4"],
        # no tokenizer given: the main process trains a BPE and sends it to the other (one vocabulary for all)
        "bpe": ["--batching", "blocks", "--max_steps", "2", "--tokenizer_vocab_size", "300"],
    }
    runs, single = [], {}
    for name, options in settings.items():
        options = [*options, "--max_eval_samples", "8"]
        one = arguments(corpus, tmp_path / f"one-{name}", *options)
        two = arguments(corpus, tmp_path / f"two-{name}", *options, "--per_device_train_batch_size", "2",
                        "--per_device_eval_batch_size", "2", "--ddp_backend", "gloo")  # fmt: skip
        if name == "bpe":
            one, two = without_tokenizer(one), without_tokenizer(two)
        runs.append({"argv": two, "record": str(tmp_path / f"two-{name}")})
        single[name] = []
        with recording_batches(single[name]):
            main(one)
    (tmp_path / "spec.json").write_text(json.dumps({"runs": runs}), encoding="utf-8")
    environment = dict(hf_env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPOSITORY))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
               str(tmp_path / "spec.json")]  # fmt: skip
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]

    for name in settings:
        assert_same_weights(weights(tmp_path / f"two-{name}"), weights(tmp_path / f"one-{name}"), atol=1e-5)
        two_results = json.loads((tmp_path / f"two-{name}" / "all_results.json").read_text())
        one_results = json.loads((tmp_path / f"one-{name}" / "all_results.json").read_text())
        assert two_results["eval_loss"] == pytest.approx(one_results["eval_loss"], abs=1e-5)
    two_tokenizer = json.loads((tmp_path / "two-bpe" / "tokenizer.json").read_text())
    assert two_tokenizer == json.loads((tmp_path / "one-bpe" / "tokenizer.json").read_text())

    per_rank = [json.loads((tmp_path / f"two-stateful_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == len(single["stateful"]) == 4
    for rank, records in enumerate(per_rank):
        for step, record in enumerate(records):
            assert record["segment"] == step and record["streams"] == [2 * rank, 2 * rank + 1]
    for step, record in enumerate(single["stateful"]):
        assert record["streams"] == [0, 1, 2, 3]
        assert per_rank[0][step]["input_ids"] + per_rank[1][step]["input_ids"] == record["input_ids"]


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: a clear error before training, no output folder
# ---------------------------------------------------------------------------------------------------------------------


def test_missing_and_empty_files_are_refused(corpus, tmp_path):
    output_dir = tmp_path / "out"
    empty, blank = tmp_path / "empty.txt", tmp_path / "blank.txt"
    empty.write_text("", encoding="utf-8")
    blank.write_text("\n  \n", encoding="utf-8")
    cases = [
        (["--train_files", str(tmp_path / "missing.txt")], "`train_files`: these files do not exist"),
        (["--train_files", str(empty)], "`train_files`: the file .* is empty"),
        (["--validation_files", str(empty)], "`validation_files`: the file .* is empty"),
        (["--train_files", str(blank)], "The train split holds no text"),  # blank lines are no documents
        (["--validation_files", str(blank)], "The validation split holds no text"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            main(arguments(corpus, output_dir, *options))
        assert_nothing_written(output_dir)


def test_missing_text_column_is_refused(corpus, tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text("review,label\nthe cat sat on the mat,1\nthe dog ran,0\na bird,1\n", encoding="utf-8")
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match="'text' is not a column.*review"):
        main(arguments(corpus, output_dir, "--train_files", str(table), "--validation_files", str(table)))
    assert_nothing_written(output_dir)


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(corpus, tmp_path):
    checkpoint = tmp_path / "small-model"
    RNNForCausalLM(tiny_config(vocab_size=20, pad_token_id=0, eos_token_id=1, bos_token_id=2)).save_pretrained(
        checkpoint
    )
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=f"tokenizer has {VOCAB_SIZE} tokens but the model's `vocab_size` is 20"):
        main(arguments(corpus, output_dir, "--model_name_or_path", str(checkpoint), "--embedding_size", "8"))
    assert_nothing_written(output_dir)
    with pytest.raises(ValueError, match="hidden_size=16 \\(checkpoint: 8\\)"):
        main(arguments(corpus, output_dir, "--model_name_or_path", str(checkpoint), "--hidden_size", "16"))
    assert_nothing_written(output_dir)


def test_an_unknown_cell_type_is_refused(corpus, tmp_path, capsys):
    from hf_rnn.cli import main as cli_main

    output_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train-lm", *arguments(corpus, output_dir, "--cell_type", "lstmm")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'lstmm'" in capsys.readouterr().err
    assert_nothing_written(output_dir)
    spec = tmp_path / "arguments.json"  # a JSON file skips argparse's choices: the dataclass checks it
    spec.write_text(json.dumps({"output_dir": str(output_dir), "cell_type": "transformer"}), encoding="utf-8")
    assert cli_main(["train-lm", str(spec)]) == 2
    assert "`cell_type` must be one of" in capsys.readouterr().err
    assert_nothing_written(output_dir)


def test_too_little_text_and_occupied_output_dir_are_refused(corpus, tmp_path):
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match="validation split.*too few"):
        main(arguments(corpus, output_dir, "--batching", "stateful", "--block_size", "100",
                       "--per_device_eval_batch_size", "16"))  # fmt: skip
    assert_nothing_written(output_dir)
    with pytest.raises(ValueError, match="fewer than one block"):
        main(arguments(corpus, output_dir, "--block_size", "100000"))
    assert_nothing_written(output_dir)
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ValueError, match="not empty"):
        main(arguments(corpus, output_dir, "--max_steps", "1"))
    with pytest.raises(ValueError, match="holds neither"):
        main(arguments(corpus, output_dir, "--max_steps", "1", "--overwrite"))
    assert (output_dir / "notes.txt").read_text() == "mine"
    (output_dir / "config.json").write_text("{}", encoding="utf-8")  # an earlier run's model, holding our input
    (output_dir / "train.txt").write_text(Path(corpus["train"]).read_text(), encoding="utf-8")
    with pytest.raises(ValueError, match="holds the input"):
        main(arguments(corpus, output_dir, "--overwrite", "--train_files", str(output_dir / "train.txt")))
    assert (output_dir / "notes.txt").read_text() == "mine"
