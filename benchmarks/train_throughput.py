"""Training throughput (tokens/s): hf_rnn trained by transformers' Trainer with stateful truncated BPTT
(`hf_rnn.language_modeling.StatefulLMTrainer`) against the training loop of pytorch/examples word_language_model.

Usage:
    python benchmarks/train_throughput.py                   # lstm, gru, rnn_tanh: 2 x 256, vocab 10k, batch 20, bptt 35
    python benchmarks/train_throughput.py --quick           # fewer steps (about a minute)
    python benchmarks/train_throughput.py --profile         # also cProfile 20 Trainer steps: where the time goes
    python benchmarks/train_throughput.py --cells lstm --hidden-size 650 --repeats 20

Both sides do the same work: embedding -> 2-layer recurrent network -> linear head over the vocabulary, dropout 0.2
(word_language_model's default) after the embedding, between the layers and before the head, cross-entropy,
backward, `clip_grad_norm_(0.25)`, SGD with lr 20, the hidden state carried and detached from batch to batch, on the
same token streams (PTB's first tokens from --data-dir, else random tokens: speed does not depend on them).

- hf_rnn: `RNNForCausalLM` in `StatefulLMTrainer.train()` (optim "sgd", constant schedule, max_grad_norm 0.25,
  batch 20 streams of 35-token segments, `shift_labels` targets), timed while `trainer.train()` runs: a callback
  marks the end of every `--block-steps` Trainer steps, and then runs the same number of steps of the other sides.
  So the order is Trainer, baseline, model loop, Trainer, baseline, ... and each Trainer block contains everything
  the Trainer does per step (data loading, callbacks, loss bookkeeping).
- baseline: word_language_model's `train()` (time-major [35, 20] batches, `nn.LSTM(num_layers=2)`, `repackage_hidden`,
  `CrossEntropyLoss`) with `torch.optim.SGD` (the same optimizer as the Trainer's "sgd").
- diagnostic third side: `RNNForCausalLM` in a plain loop (forward with `cache=`/`shift_labels`, backward, clip, SGD)
  separates the cost of the model from the cost of the Trainer.

Headline: Trainer tokens/s / baseline tokens/s per cell type (median over blocks), target 0.95.
"""

import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import (
    DEFAULT_DATA_DIR,
    base_parser,
    format_table,
    headline,
    median_ratio,
    positive_int,
    setup,
    write_results_and_plot,
)
from torch import nn
from transformers import PrinterCallback, TrainerCallback, TrainingArguments, default_data_collator

from hf_rnn import RNNConfig, RNNForCausalLM
from hf_rnn.language_modeling import StatefulLMTrainer, build_stateful_dataset

NAME = "train_throughput"
TARGET = 0.95
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
DROPOUT = 0.2  # word_language_model's default --dropout
LEARNING_RATE, CLIP = 20.0, 0.25  # word_language_model's defaults


def load_tokens(data_dir: Path, count: int, vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """`count` token ids: PTB's training text (word_language_model's Dictionary: ids in order of first appearance,
    `<eos>` after every line) when --data-dir has it, else uniform random ids."""
    path = Path(data_dir) / "ptb" / "train.txt"
    if path.is_file():
        ids, dictionary = [], {}
        with open(path, encoding="utf-8") as file:
            for line in file:
                for word in line.split() + ["<eos>"]:
                    ids.append(dictionary.setdefault(word, len(dictionary)) % vocab_size)
                if len(ids) >= count:
                    return torch.tensor(ids[:count]), f"ptb ({path})"
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (count,), generator=generator), "random"


class WordLanguageModel(nn.Module):
    """pytorch/examples word_language_model's RNNModel: time-major encoder -> rnn -> decoder, dropout around."""

    def __init__(self, cell_type: str, vocab_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, hidden_size)
        if cell_type in ("lstm", "gru"):
            self.rnn = getattr(nn, cell_type.upper())(hidden_size, hidden_size, num_layers, dropout=dropout)
        else:
            self.rnn = nn.RNN(hidden_size, hidden_size, num_layers, nonlinearity=cell_type[4:], dropout=dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self.cell_type, self.num_layers, self.hidden_size = cell_type, num_layers, hidden_size
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # its init_weights
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, inputs, hidden):  # inputs [T, B] -> logits [T, B, V]
        output, hidden = self.rnn(self.drop(self.encoder(inputs)), hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, batch_size: int, device):
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        return (zeros, zeros.clone()) if self.cell_type == "lstm" else zeros


def repackage_hidden(hidden):
    """word_language_model's helper: cut the graph at the carried state."""
    return hidden.detach() if isinstance(hidden, torch.Tensor) else tuple(repackage_hidden(h) for h in hidden)


def baseline_stepper(model: WordLanguageModel, streams: torch.Tensor, bptt: int, device):
    """word_language_model's `train()` loop, one batch per call. streams: [L, B] time-major (its `batchify`)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    criterion = nn.CrossEntropyLoss()
    state = {"hidden": model.init_hidden(streams.shape[1], device), "position": 0, "losses": []}
    model.train()

    def step():
        i = state["position"]
        if i + bptt + 1 > streams.shape[0]:  # end of the streams: a new epoch from a zero state
            i, state["hidden"] = 0, model.init_hidden(streams.shape[1], device)
        data, targets = (
            streams[i : i + bptt],
            streams[i + 1 : i + 1 + bptt].reshape(-1),
        )  # word_language_model get_batch
        model.zero_grad()
        state["hidden"] = repackage_hidden(state["hidden"])
        output, state["hidden"] = model(data, state["hidden"])
        loss = criterion(output.view(-1, output.shape[-1]), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        state["position"] = i + bptt
        state["losses"].append(loss.item())

    return step, state


def model_loop_stepper(model, streams: torch.Tensor, bptt: int):
    """RNNForCausalLM without Trainer: what `StatefulLMTrainer` does per step, written out. streams: [L, B]."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    batch_first = streams.t().contiguous()  # [B, L]
    state = {"cache": None, "position": 0, "losses": []}
    model.train()

    def step():
        i = state["position"]
        if i + bptt + 1 > batch_first.shape[1]:
            i, state["cache"] = 0, None
        inputs, targets = batch_first[:, i : i + bptt], batch_first[:, i + 1 : i + 1 + bptt]
        output = model(input_ids=inputs, shift_labels=targets, cache=state["cache"], use_cache=True)
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        model.zero_grad()
        state["cache"] = output.cache.detach()
        state["position"] = i + bptt
        state["losses"].append(output.loss.item())

    return step, state


def lm_config(cell_type: str, args) -> RNNConfig:
    """The hf_rnn twin of `WordLanguageModel`: same sizes, the same three dropouts."""
    return RNNConfig(
        vocab_size=args.vocab_size,
        embedding_size=args.hidden_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        cell_type=cell_type,
        embedding_dropout=DROPOUT,
        hidden_dropout=DROPOUT,
        output_dropout=DROPOUT,
    )


def make_trainer(config, tokens: torch.Tensor, args, steps: int, output_dir: str, device, callbacks=()):
    torch.manual_seed(0)
    model = RNNForCausalLM(config)
    dataset = build_stateful_dataset(tokens.numpy(), args.batch_size, args.bptt, max_segments=steps)
    training_args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=CLIP,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = StatefulLMTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=default_data_collator,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict; the table says it all
    return trainer


def alternating_callback(block_steps: int, others: dict, synchronize):
    """A TrainerCallback that closes a timed block every `block_steps` optimizer steps and then runs `block_steps`
    steps of each other side, timed. Times are seconds per block, keyed by side."""

    class AlternatingCallback(TrainerCallback):
        def __init__(self):
            self.times = {"hf_rnn Trainer": [], **{name: [] for name in others}}
            self.mark = None

        def on_train_begin(self, args, state, control, **kwargs):
            synchronize()
            self.mark = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % block_steps:
                return
            synchronize()
            self.times["hf_rnn Trainer"].append(time.perf_counter() - self.mark)
            for name, step in others.items():
                start = time.perf_counter()
                for _ in range(block_steps):
                    step()
                synchronize()
                self.times[name].append(time.perf_counter() - start)
            self.mark = time.perf_counter()  # the Trainer's next block starts now

    return AlternatingCallback()


def run_cell(cell_type: str, tokens: torch.Tensor, args, device, repeats: int, block_steps: int) -> dict:
    warmup_blocks = 1
    steps = (repeats + warmup_blocks) * block_steps
    config = lm_config(cell_type, args)
    usable = tokens.numel() // args.batch_size * args.batch_size
    streams = tokens[:usable].view(args.batch_size, -1).t().contiguous().to(device)  # batchify: [L, B]

    torch.manual_seed(0)
    baseline = WordLanguageModel(cell_type, args.vocab_size, args.hidden_size, args.layers, DROPOUT).to(device)
    baseline_step, baseline_state = baseline_stepper(baseline, streams, args.bptt, device)
    torch.manual_seed(0)
    loop_model = RNNForCausalLM(config).to(device)
    loop_step, loop_state = model_loop_stepper(loop_model, streams, args.bptt)

    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    callback = alternating_callback(
        block_steps, {"baseline": baseline_step, "hf_rnn model loop": loop_step}, synchronize
    )
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = make_trainer(config, tokens, args, steps, output_dir, device, callbacks=[callback])
        result = trainer.train()
    times = {name: seconds[warmup_blocks:] for name, seconds in callback.times.items()}  # first block: warmup
    tokens_per_block = args.batch_size * args.bptt * block_steps
    median = statistics.median
    return {
        "cell_type": cell_type,
        "parameters": sum(p.numel() for p in loop_model.parameters()),
        "ratio": median_ratio(times["hf_rnn Trainer"], times["baseline"]),
        "model_loop_ratio": median_ratio(times["hf_rnn model loop"], times["baseline"]),
        # diagnostic: the fastest block of each side, the closest to an idle machine
        "ratio_of_best": min(times["baseline"]) / min(times["hf_rnn Trainer"]),
        "trainer_tokens_per_second": tokens_per_block / median(times["hf_rnn Trainer"]),
        "baseline_tokens_per_second": tokens_per_block / median(times["baseline"]),
        "model_loop_tokens_per_second": tokens_per_block / median(times["hf_rnn model loop"]),
        # same data, same sizes: the losses should be alike (a check that both sides really train)
        "trainer_mean_loss": result.training_loss,
        "baseline_mean_loss": sum(baseline_state["losses"]) / len(baseline_state["losses"]),
        "model_loop_mean_loss": sum(loop_state["losses"]) / len(loop_state["losses"]),
        "block_seconds": times,
    }


def profile_trainer(cell_type: str, tokens, args, device, steps: int = 20) -> str:
    """cProfile of `trainer.train()` for `steps` steps (Trainer built beforehand): the top 25 by cumulative time."""
    config = lm_config(cell_type, args)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = make_trainer(config, tokens, args, steps, output_dir, device)
        profiler = cProfile.Profile()
        profiler.enable()
        trainer.train()
        profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
    return stream.getvalue()


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--cells", default="lstm,gru,rnn_tanh", help=f"comma-separated, from {list(CELLS)}")
    parser.add_argument("--hidden-size", type=positive_int, default=256, help="embedding and hidden width")
    parser.add_argument("--layers", type=positive_int, default=2)
    parser.add_argument("--vocab-size", type=positive_int, default=10000)
    parser.add_argument("--batch-size", type=positive_int, default=20)
    parser.add_argument("--bptt", type=positive_int, default=35)
    parser.add_argument(
        "--block-steps", type=positive_int, default=None, help="optimizer steps per timed block (default 2)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds ptb/train.txt (optional)")
    parser.add_argument("--profile", action="store_true", help="cProfile 20 Trainer steps and print the top 25")
    args = parser.parse_args(argv)
    cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    unknown = [cell for cell in cells if cell not in CELLS]
    if unknown or not cells:
        parser.error(f"--cells: unknown cell type(s) {unknown}; choose from {list(CELLS)}")
    device = setup(args)
    # short blocks keep each pair of blocks close in time (load on a shared machine changes within seconds)
    repeats = args.repeats or (3 if args.quick else 20)
    block_steps = args.block_steps or 2

    steps = (repeats + 1) * block_steps
    tokens, source = load_tokens(args.data_dir, args.batch_size * (steps * args.bptt + 1), args.vocab_size)
    rows = [run_cell(cell, tokens, args, device, repeats, block_steps) for cell in cells]

    print(
        format_table(
            [
                {
                    "cell": r["cell_type"],
                    "Trainer tok/s": r["trainer_tokens_per_second"],
                    "baseline tok/s": r["baseline_tokens_per_second"],
                    "ratio Trainer/baseline": r["ratio"],
                    "model loop tok/s": r["model_loop_tokens_per_second"],
                    "ratio loop/baseline": r["model_loop_ratio"],
                }
                for r in rows
            ],
            [
                "cell",
                "Trainer tok/s",
                "baseline tok/s",
                "ratio Trainer/baseline",
                "model loop tok/s",
                "ratio loop/baseline",
            ],
        )
    )
    profile = None
    if args.profile:
        profile = profile_trainer(cells[0], tokens, args, device)
        print(f"\ncProfile of 20 Trainer steps ({cells[0]}), top 25 by cumulative time:\n{profile}")

    results = {
        "headline": [
            headline(
                f"training tokens/s, hf_rnn Trainer / word_language_model loop, {r['cell_type']}", r["ratio"], TARGET
            )
            for r in rows
        ],
        "sizes": {
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "vocab_size": args.vocab_size,
            "batch_size": args.batch_size,
            "bptt": args.bptt,
            "dropout": DROPOUT,
            "repeats": repeats,
            "block_steps": block_steps,
            "data": source,
        },
        "cells": rows,
    }
    if profile is not None:
        results["profile_top25"] = profile
    return write_results_and_plot(
        args,
        NAME,
        results,
        device,
        rows,
        [r["cell_type"] for r in rows],
        TARGET,
        f"Training tokens/s: Trainer vs word_language_model ({args.layers} x {args.hidden_size})",
    )


if __name__ == "__main__":
    sys.exit(main())
