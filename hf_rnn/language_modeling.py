"""Train a recurrent language model (`RNNForCausalLM`) with transformers' `Trainer`: fixed-length blocks, or stateful
truncated backpropagation through time (TBPTT), the classic way recurrent language models are trained.

`hf-rnn train-lm` and `python training/train_causal_lm.py` run `main`; its options are the fields of
`ModelArguments`, `DataArguments` and `LanguageModelingTrainingArguments` (transformers' `TrainingArguments`, so every
Trainer option works: `--max_grad_norm`, `--gradient_accumulation_steps`, `--lr_scheduler_type`, `--eval_strategy`,
`--save_steps`, `--resume_from_checkpoint`, `--report_to tensorboard`, ...), or one JSON file holding them.

```bash
# the embedded default corpus, a byte-level BPE tokenizer trained on it, a 2-layer LSTM, stateful TBPTT
hf-rnn train-lm --batching stateful --block_size 64 --tie_word_embeddings true --output_dir outputs/lm
hf-rnn train-lm --train_files train.txt --validation_files valid.txt --tokenizer_name_or_path gpt2 \\
    --cell_type gru --hidden_size 512 --embedding_size 512 --num_train_epochs 3 --output_dir outputs/gru
hf-rnn train-lm --output_dir outputs/lm --resume_from_checkpoint true     # continue from the last checkpoint
torchrun --nproc_per_node 2 training/train_causal_lm.py arguments.json     # several processes, one JSON file
```

AWD-LSTM (Merity et al. 2017, "Regularizing and Optimizing LSTM Language Models", salesforce/awd-lstm-lm) on Penn
Treebank, from the repository root (the recipe files name `../shared/data/ptb/*.txt` and `outputs/` relative to it):

```bash
# a word-level tokenizer holding every PTB word (9,998 words + 4 special tokens; hold out 1 line, not 5%)
hf-rnn train-tokenizer --kind word --vocab_size 10002 --train_files ../shared/data/ptb/train.txt \\
    --validation_fraction 0.00001 --output_dir outputs/ptb-word-tokenizer
hf-rnn train-lm training/awd_lstm_ptb.json        # the paper's setup, 500 epochs (there: val 61.2 / test 58.8 ppl)
hf-rnn train-lm training/awd_lstm_ptb_small.json  # the same techniques, 200/400/400/200, 15 minutes on 2 CPU cores
```

The AWD options, usable with any data:
- Model (`ModelArguments`, passed to `RNNConfig`): `layer_hidden_sizes` (1150 1150 400), `word_dropout` (dropoute),
  `weight_drop` (wdrop), `locked_dropout` (one mask per sequence for the embedding/hidden/output dropouts, which are
  AWD's dropouti/dropouth/dropout), `activation_regularization` (alpha), `temporal_activation_regularization` (beta);
  `weight_init awd`: AWD's initial weights, which SGD at learning rate 30 needs (`awd_weight_init`).
- `--variable_bptt true` (stateful batching): segment lengths drawn around `block_size` as AWD does, from the seed
  (`data_seed`, else `seed`), each step's learning rate scaled by length / block_size (`build_stateful_dataset`,
  `StatefulLMTrainer`). Evaluation keeps `block_size`.
- `--nt_asgd true --nt_asgd_nonmono 5`: non-monotonically triggered averaging on top of the configured optimizer
  (AWD: `--optim sgd --learning_rate 30 --max_grad_norm 0.25 --weight_decay 1.2e-6 --lr_scheduler_type constant`);
  see `WeightAverage` and `LanguageModelingTrainer`.
- `--max_train_minutes M`: stop at the first step past M minutes, then evaluate and save (fixed-budget comparisons).
- `--test_files`: the final evaluation also reports `test_loss` / `test_perplexity`.

Where it differs from awd-lstm-lm: the variable segment lengths are drawn once, so every epoch is cut the same way
(AWD draws anew each epoch; here a resumed run must read the very same batches); Trainer's weight decay skips biases;
the vocabulary holds two never-seen special tokens (`<pad>`, `<s>`), and `</s>` plays AWD's `<eos>`; the test set
is read in `per_device_eval_batch_size` streams like validation (AWD: 1 stream); the saved model is the average at
the end of training (AWD keeps the one of the best validation loss) and AWD's `finetune.py` stage is not run.

What it does, in order; every check on the input runs before any training, and bad input leaves no output folder:

1. Load the texts with `hf_rnn.data.load_text_dataset`: the embedded default corpus, local files, or a Hub dataset,
   as a "train" and a "validation" split (and `test_files` as a "test" split).
2. Tokenizer: `tokenizer_name_or_path`, else the one saved with `model_name_or_path`, else a byte-level BPE trained
   on the train split (`tokenizer_vocab_size`; on the main process, then sent to the others).
3. Tokenise with `datasets.map` (batched), appending the EOS token to every document so that documents stay
   separated once concatenated.
4. Lay the token stream out for the chosen `batching` (see `group_texts` and `build_stateful_dataset`):
   - "blocks": the concatenated stream cut into `block_size`-token blocks, as transformers' `run_clm` does; blocks
     are shuffled and each starts from a zero state.
   - "stateful": the stream cut into `per_device_train_batch_size x number of processes` contiguous streams, each
     read `block_size` tokens at a time; the recurrent state is carried from one batch to the next, detached
     (`StatefulLMTrainer`). Evaluation does the same over the validation streams.
5. Model: new (`RNNConfig` from the architecture options, `vocab_size` = the tokenizer's size) or continued from
   `model_name_or_path` (its architecture; regularisers may be changed; the tokenizer must fit its vocabulary).
6. Train with `Trainer`, evaluate (validation loss and perplexity = exp(loss); test too with `test_files`), and save
   to `output_dir`: the model (safetensors, config, modeling source for remote code), tokenizer,
   `generation_config.json` (EOS/pad ids and sampling defaults), `all_results.json`, `loss_curve.png` (matplotlib:
   `pip install hf-rnn[train]`) and a model card (README.md).

Output folder: Trainer works in `output_dir` as usual (checkpoints `checkpoint-N/`, TensorBoard logs), so a crashed run
can be resumed. Every checkpoint is written as `tmp-checkpoint-N/` and renamed to `checkpoint-N/` once complete (see
`LanguageModelingTrainer`), so a run killed while saving leaves no checkpoint that resumes as if complete, and
`--resume_from_checkpoint true` takes the last complete one (`last_complete_checkpoint`). The final files are written
to a staging folder `.{name}.staging` next to it and then moved in, with `config.json` last (and an older `config.json`
removed first): a run that dies while saving leaves no folder that looks like a complete model.
"""

import contextlib
import itertools
import json
import logging as python_logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy
import pyarrow.compute
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import SequentialSampler
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy, SaveStrategy, rotate_checkpoints
from transformers.utils import logging

from .command_utils import command_logging, parse_dataclass_arguments, tune_glibc_malloc
from .configuration_rnn import CELL_TYPES, RNNConfig
from .data import load_text_dataset
from .file_utils import drop_pickled_training_arguments
from .hub import push_training_output
from .model_card import hyperparameters_from_training_arguments, write_model_card
from .modeling_rnn import RNNCache, RNNForCausalLM
from .tokenization import _check_tokenizer_arguments, train_tokenizer
from .validation import check_tokenizer_fits

logger = logging.get_logger(__name__)

BATCHING_MODES = ("blocks", "stateful")
WEIGHT_INITS = ("hf_rnn", "awd")
# Architecture fields of RNNConfig that the command line may set for a new model; a checkpoint brings its own.
ARCHITECTURE_FIELDS = (
    "cell_type",
    "embedding_size",
    "hidden_size",
    "num_hidden_layers",
    "layer_hidden_sizes",
    "tie_word_embeddings",
)
# Regularisers: fields that may differ from a checkpoint's config when continuing from it (they change no weight's
# shape). The last five are AWD-LSTM's (Merity et al. 2017): dropoute, wdrop, locked masks, AR alpha, TAR beta.
REGULARIZATION_FIELDS = (
    "embedding_dropout",
    "hidden_dropout",
    "output_dropout",
    "word_dropout",
    "weight_drop",
    "locked_dropout",
    "activation_regularization",
    "temporal_activation_regularization",
)
# Columns of a stateful dataset that say where each row sits; the trainer reads them and never passes them on.
POSITION_COLUMNS = ("stream_index", "segment_index")
# The carried state of a checkpoint, one file per process (as Trainer's `rng_state_{rank}.pth`).
TBPTT_STATE_NAME = "tbptt_state.safetensors"
# NT-ASGD's trigger state and averaged parameters in a checkpoint (the same on every process: the main one writes it).
NT_ASGD_STATE_NAME = "nt_asgd_state.safetensors"
# Variable BPTT (AWD-LSTM's `main.py`): the mean segment length is block_size, or block_size / 2 with probability
# 1 - VARIABLE_BPTT_FULL_PROBABILITY; the length is drawn from a normal of that mean and VARIABLE_BPTT_STD, at least
# VARIABLE_BPTT_MIN_LENGTH, and at most block_size + 3 standard deviations (a bound on memory; a 0.1% tail clipped).
VARIABLE_BPTT_FULL_PROBABILITY = 0.95
VARIABLE_BPTT_STD = 5.0
VARIABLE_BPTT_MIN_LENGTH = 5
LOSS_CURVE_NAME = "loss_curve.png"
# A checkpoint is written under this prefix and renamed to `checkpoint-N` once complete. Trainer's
# `get_last_checkpoint` and checkpoint rotation only match `checkpoint-<digits>`, so they never see one part-written.
TEMPORARY_CHECKPOINT_PREFIX = f"tmp-{PREFIX_CHECKPOINT_DIR}"
ALL_RESULTS_NAME = "all_results.json"


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    """The model and the tokenizer: a new model (architecture options) or an hf_rnn checkpoint to continue from.

    Architecture options left unset take `RNNConfig`'s defaults for a new model (2-layer LSTM, 256 wide, untied), or
    the checkpoint's values when continuing (giving a different value is an error). Regularisers (the dropouts, AWD's
    word_dropout, weight_drop, locked_dropout, AR and TAR) left unset take the defaults or the checkpoint's values, and
    may be changed when continuing.
    """

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "hf_rnn causal LM checkpoint (folder or Hub id) to continue training. Default: a new model."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer to use. Default: the one saved with --model_name_or_path, else a byte-level BPE "
            "trained on the train split (--tokenizer_vocab_size)."
        },
    )
    tokenizer_vocab_size: int = field(
        default=8000, metadata={"help": "Vocabulary size of the BPE tokenizer trained when none is given."}
    )
    cell_type: Literal["rnn_tanh", "rnn_relu", "lstm", "gru"] | None = field(
        default=None, metadata={"help": "Recurrent cell (new model; default lstm)."}
    )
    embedding_size: int | None = field(default=None, metadata={"help": "Embedding width (new model; default 256)."})
    hidden_size: int | None = field(default=None, metadata={"help": "Recurrent state width (new model; default 256)."})
    num_hidden_layers: int | None = field(
        default=None, metadata={"help": "Number of stacked recurrent layers (new model; default 2)."}
    )
    tie_word_embeddings: bool | None = field(
        default=None,
        metadata={"help": "Share the LM head with the embedding; needs embedding_size == hidden_size (default false)."},
    )
    embedding_dropout: float | None = field(default=None, metadata={"help": "Dropout on the embeddings (default 0)."})
    hidden_dropout: float | None = field(default=None, metadata={"help": "Dropout between layers (default 0)."})
    output_dropout: float | None = field(default=None, metadata={"help": "Dropout before the LM head (default 0)."})
    layer_hidden_sizes: list[int] | None = field(
        default=None,
        metadata={
            "help": "Hidden size of each layer, e.g. 1150 1150 400 (AWD-LSTM); the last must equal hidden_size "
            "(new model; default: hidden_size for every layer)."
        },
    )
    word_dropout: float | None = field(
        default=None,
        metadata={"help": "Drop whole rows of the embedding matrix, i.e. every occurrence of a word (AWD's dropoute)."},
    )
    weight_drop: float | None = field(
        default=None, metadata={"help": "DropConnect on the hidden-to-hidden weights (AWD's wdrop; default 0)."}
    )
    locked_dropout: bool | None = field(
        default=None,
        metadata={"help": "Embedding/hidden/output dropouts use one mask per sequence, shared over time (AWD)."},
    )
    activation_regularization: float | None = field(
        default=None, metadata={"help": "AR: alpha x mean squared last-layer output (AWD's alpha; default 0)."}
    )
    temporal_activation_regularization: float | None = field(
        default=None,
        metadata={"help": "TAR: beta x mean squared change of the last-layer output (AWD's beta; default 0)."},
    )
    weight_init: Literal["hf_rnn", "awd"] = field(
        default="hf_rnn",
        metadata={
            "help": "Initial weights of a new model. hf_rnn: the model's own (Glorot/orthogonal, forget-gate bias 1). "
            "awd: awd-lstm-lm's (PyTorch's default for the recurrent layers, uniform +-0.1 embeddings), which SGD at "
            "AWD's learning rate 30 needs (see `awd_weight_init`)."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a tokenizer from the Hub to run its own code."}
    )

    def __post_init__(self):
        # The command line checks `cell_type` against its choices; a JSON file or a Python caller does not.
        if self.cell_type is not None and self.cell_type not in CELL_TYPES:
            raise ValueError(f"`cell_type` must be one of {list(CELL_TYPES)}, got {self.cell_type!r}.")
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"`weight_init` must be one of {list(WEIGHT_INITS)}, got {self.weight_init!r}.")
        if self.weight_init != "hf_rnn" and self.model_name_or_path is not None:
            raise ValueError(
                f"`weight_init`={self.weight_init!r} initialises a new model, but `model_name_or_path` brings trained "
                "weights; leave `weight_init` out."
            )


@dataclass
class DataArguments:
    """Where the text comes from and how it is cut into training rows."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id or local dataset folder (default: the embedded corpus)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_files: list[str] | None = field(
        default=None, metadata={"help": "Local .txt/.csv/.tsv/.json/.jsonl files to train on, instead of a dataset."}
    )
    validation_files: list[str] | None = field(
        default=None, metadata={"help": "Local validation files (default: a held-out share of the train files)."}
    )
    test_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Local test files: the final evaluation also reports test_loss and test_perplexity (whole files, "
            "cut as the validation files are)."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Share held out for validation when the data has no validation split."}
    )
    validation_split_seed: int = field(
        default=0, metadata={"help": "Seed of that hold-out (the tokenizer recipe's --seed: keep them equal)."}
    )
    batching: Literal["blocks", "stateful"] = field(
        default="blocks",
        metadata={
            "help": "blocks: independent fixed-length blocks, each from a zero state (run_clm). stateful: truncated "
            "backpropagation through time over contiguous streams, the state carried from batch to batch."
        },
    )
    block_size: int = field(
        default=128, metadata={"help": "Tokens per row: the block length, or the BPTT length in stateful mode."}
    )
    variable_bptt: bool = field(
        default=False,
        metadata={
            "help": "Stateful batching: AWD-LSTM's variable BPTT length. Each batch's length is drawn around "
            "block_size (block_size / 2 with probability 0.05), from the seed, and that step's learning rate is "
            "scaled by length / block_size. Evaluation keeps block_size."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N rows only (stateful: whole segments of every stream)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N rows only (stateful: whole segments)."}
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenisation (datasets.map num_proc)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where `datasets` keeps its cache (default: HF_DATASETS_CACHE)."}
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Start over in an output_dir that holds an earlier run (its checkpoints and model)."},
    )

    def __post_init__(self):
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"`batching` must be one of {list(BATCHING_MODES)}, got {self.batching!r}.")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 2:
            raise ValueError(
                f"`block_size` must be an integer of at least 2 (tokens per row), got {self.block_size!r}."
            )
        for name in ("max_train_samples", "max_eval_samples", "preprocessing_num_workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be at least 1 when given, got {value}.")
        if self.variable_bptt and self.batching != "stateful":
            raise ValueError(
                "`variable_bptt` varies the segment length of stateful truncated BPTT: it needs `--batching stateful` "
                f"(got {self.batching!r})."
            )


@dataclass
class LanguageModelingTrainingArguments(TrainingArguments):
    """transformers' `TrainingArguments` with a learning rate suited to recurrent networks trained with Adam, NT-ASGD
    (AWD-LSTM's averaging) and a wall-clock budget."""

    learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "Initial learning rate (AdamW). 1e-3 suits recurrent networks (transformers' default 5e-5 is for "
            "fine-tuning large pretrained transformers)."
        },
    )
    nt_asgd: bool = field(
        default=False,
        metadata={
            "help": "Non-monotonically triggered averaging (AWD-LSTM's NT-ASGD): once the validation loss is worse "
            "than the best of all evaluations but the last nt_asgd_nonmono, keep an equal-weight average of the "
            "parameters after every step; later evaluations and the saved model use the average. Needs evaluations "
            "(--eval_strategy steps or epoch); AWD trains with --optim sgd."
        },
    )
    nt_asgd_nonmono: int = field(
        default=5, metadata={"help": "NT-ASGD's non-monotone interval: the most recent evaluations left out (AWD: 5)."}
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Wall-clock budget of training: stop at the first step that ends past it (then evaluate and save "
            "as usual). Counted from the start of training in this process (a resumed run gets the budget anew)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        nonmono = self.nt_asgd_nonmono
        if isinstance(nonmono, bool) or not isinstance(nonmono, int) or nonmono < 1:
            raise ValueError(f"`nt_asgd_nonmono` must be an integer of at least 1, got {self.nt_asgd_nonmono!r}.")
        if self.nt_asgd and self.eval_strategy == IntervalStrategy.NO:
            raise ValueError(
                "`nt_asgd` decides from the validation loss of every evaluation, but `eval_strategy` is 'no': set "
                "`--eval_strategy steps` (with `--eval_steps`) or `--eval_strategy epoch`."
            )
        if self.nt_asgd and self.load_best_model_at_end:
            raise ValueError(
                "`nt_asgd` evaluates averaged parameters, which the checkpoints' model files do not hold, so "
                "`load_best_model_at_end` would load weights other than the ones evaluated; leave it off."
            )
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"`max_train_minutes` must be a positive number of minutes, got {self.max_train_minutes}.")


# ---------------------------------------------------------------------------------------------------------------------
# Data: tokens, blocks, streams
# ---------------------------------------------------------------------------------------------------------------------


def tokenize_documents(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str = "text",
    num_proc: int | None = None,
    description: str = "Tokenizing",
) -> datasets.Dataset:
    """One row per document with its token ids and the EOS token after them, so that documents stay separated when
    the rows are concatenated. Only `input_ids` is kept. `datasets.map`, batched (and cached for file-backed data)."""
    eos_token_id = tokenizer.eos_token_id

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        # add_special_tokens=False: the recipe places the separators itself (a tokenizer adding BOS to every call
        # would put BOS EOS between documents)
        ids = tokenizer(batch[text_column], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return {"input_ids": [document + [eos_token_id] for document in ids]}

    return dataset.map(tokenize, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc=description)


def group_texts(examples: dict[str, list], block_size: int) -> dict[str, list]:
    """transformers' run_clm `group_texts`: concatenate a batch of tokenised documents and cut the result into blocks
    of `block_size` tokens, dropping the remainder; `labels` are the `input_ids` (the model shifts them).

    For `datasets.map(group_texts, batched=True, fn_kwargs={"block_size": ...})`: the remainder is dropped once per
    map batch (1000 documents by default), a negligible share of the text.
    """
    tokens = [token for document in examples["input_ids"] for token in document]
    length = (len(tokens) // block_size) * block_size
    blocks = [tokens[start : start + block_size] for start in range(0, length, block_size)]
    return {"input_ids": blocks, "labels": [list(block) for block in blocks]}


def build_block_dataset(
    tokenized: datasets.Dataset, block_size: int, num_proc: int | None = None, description: str = "Grouping"
) -> datasets.Dataset:
    """Rows of `block_size` tokens (`input_ids`, `labels`) from a tokenised dataset, with `group_texts`."""
    return tokenized.map(
        group_texts, batched=True, fn_kwargs={"block_size": block_size}, num_proc=num_proc, desc=description
    )


def concatenated_token_ids(tokenized: datasets.Dataset) -> numpy.ndarray:
    """The `input_ids` of every row, concatenated in row order: the token stream, as a 1-D int64 array.

    Flattened by Arrow (no Python loop over tokens), so that a corpus of millions of tokens takes a moment.
    """
    column = tokenized.with_format("arrow")[:]["input_ids"]  # a ChunkedArray of token lists
    return pyarrow.compute.list_flatten(column).to_numpy().astype(numpy.int64)


def variable_bptt_lengths(num_targets: int, block_size: int, seed: int) -> numpy.ndarray:
    """AWD-LSTM's variable BPTT lengths: consecutive segment lengths that cover `num_targets` positions exactly.

    As in salesforce/awd-lstm-lm `main.py`, each segment's mean is `block_size` with probability 0.95 and
    `block_size / 2` otherwise, and its length is `max(5, int(normal(mean, 5)))`; here it is also capped at
    `block_size + 15` (three standard deviations: memory stays bounded) and the last one is cut to what is left. The
    draws come from `numpy.random.default_rng(seed)`: the same seed gives the same lengths (exact resumption).

    Returns:
        `numpy.ndarray` of int64 lengths, each in [1, block_size + 15], summing to `num_targets`.
    """
    generator = numpy.random.default_rng(seed)
    max_length = block_size + int(3 * VARIABLE_BPTT_STD)
    lengths, covered = [], 0
    while covered < num_targets:
        mean = block_size if generator.random() < VARIABLE_BPTT_FULL_PROBABILITY else block_size / 2
        length = min(max(VARIABLE_BPTT_MIN_LENGTH, int(generator.normal(mean, VARIABLE_BPTT_STD))), max_length)
        length = min(length, num_targets - covered)
        lengths.append(length)
        covered += length
    return numpy.asarray(lengths, dtype=numpy.int64)


def build_stateful_dataset(
    token_ids: numpy.ndarray | list[int],
    num_streams: int,
    block_size: int,
    max_segments: int | None = None,
    variable_length_seed: int | None = None,
) -> datasets.Dataset:
    """Lay a token stream out for stateful truncated backpropagation through time, in the order a sequential sampler
    must read it.

    The stream is cut into `num_streams` = S contiguous streams of L = len(token_ids) // S tokens (the last
    len(token_ids) % S tokens are dropped), as pytorch/examples word_language_model's `batchify`. With the alphabet as
    the token stream and S = 4:

    ```
    a b c d e f g h i j k l m n o p q r s t u v w x y z
    ->  stream 0: a b c d e f      (L = 6; y, z are dropped)
        stream 1: g h i j k l
        stream 2: m n o p q r
        stream 3: s t u v w x
    ```

    Row (t, s) is segment t of stream s: `input_ids` = tokens [t*block_size, (t+1)*block_size) of the stream, and
    `shift_labels` = the tokens one further, so that the last token of a segment is trained on the first token of the
    next one (word_language_model's `get_batch`). A segment needs the token after it, so there are
    T = (L - 1) // block_size segments (a shorter last segment is dropped: every row has `block_size` tokens).
    With block_size = 2:

    ```
              segment 0      segment 1
    stream 0: input a b      input c d       (e f: no room for a third segment and its targets)
              label b c      label d e
    stream 1: input g h      input i j
              label h i      label j k
    ...
    ```

    Rows are ordered segment-major, stream-minor: row index = t * S + s. Why this order: Trainer's data loader reads
    rows sequentially in batches of `per_device_train_batch_size` = B rows, and with W processes accelerate's
    `BatchSamplerShard` deals those batches round-robin: batch k goes to process k % W (`_iter_with_no_split`:
    `idx % num_processes == process_index`; accelerate's `dispatch_batches=True` hands out the same rows: slice r of
    W consecutive batches; `split_batches=True` slices differently and is refused). With S = B * W, process r
    therefore receives, at its j-th batch, segment j of streams r*B ... r*B + B - 1: every process owns B streams
    and reads them in order, batch after batch. With B = 2 and W = 2 (S = 4):

    ```
    row:      0    1    2    3    4    5    6    7    8  ...
    (t, s): (0,0)(0,1)(0,2)(0,3)(1,0)(1,1)(1,2)(1,3)(2,0) ...
    batch:  |--0----|--1----|--2----|--3----|--4--- ...
    process:    0       1       0       1       0
    ```

    Process 0 gets segments 0, 1, 2, ... of streams 0 and 1; process 1 the same segments of streams 2 and 3. Every
    batch is full (T * S rows), so no process pads or drops one (accelerate's `even_batches` never has to wrap
    around to the first rows). With one process (W = 1) batch t is segment t of all
    S = B streams. Consecutive micro-batches of gradient accumulation are consecutive segments of the same streams.

    Variable BPTT (`variable_length_seed` given): segment t has length l_t from `variable_bptt_lengths(L - 1,
    block_size, seed)` instead of `block_size`, the same for every stream, so that a batch (and the batches of all
    processes for one segment: one global batch) has rows of one length and needs no padding. The segments cover
    all L - 1 targets of every stream once, in order (the last one is what is left); the layout is otherwise the
    same. The lengths are drawn once: every epoch is cut the same way, and a resumed run reads the same batches.

    Columns: `input_ids` and `shift_labels` ([block_size] each, or [l_t]), `stream_index` (s) and `segment_index`
    (t); the last two let `StatefulLMTrainer` check that every batch continues the one before.

    Args:
        token_ids: the token stream (documents concatenated, EOS between them).
        num_streams (`int`): S, the number of streams: per-device batch size x number of processes.
        block_size (`int`): tokens per segment (the BPTT length; the mean length with variable BPTT).
        max_segments (`int`, *optional*): keep only the first segments of every stream (quick runs).
        variable_length_seed (`int`, *optional*): draw the segment lengths with this seed (variable BPTT).

    Raises:
        ValueError: when the stream is too short for one segment of every stream.
    """
    token_ids = numpy.asarray(token_ids, dtype=numpy.int64)
    if num_streams < 1 or block_size < 1:
        raise ValueError(f"`num_streams` and `block_size` must be positive, got {num_streams} and {block_size}.")
    stream_length = len(token_ids) // num_streams
    num_segments = (stream_length - 1) // block_size if stream_length > 0 else 0
    if num_segments < 1:
        raise ValueError(
            f"{len(token_ids)} tokens are too few for {num_streams} streams of at least one {block_size}-token segment "
            f"and its next-token targets: that needs {num_streams * (block_size + 1)} tokens. Give more text, or "
            "lower `block_size` or the batch size (streams = per-device batch size x number of processes)."
        )
    if variable_length_seed is None:
        lengths = numpy.full(num_segments, block_size, dtype=numpy.int64)  # the remainder is dropped
    else:
        lengths = variable_bptt_lengths(stream_length - 1, block_size, variable_length_seed)
    if max_segments is not None:
        lengths = lengths[:max_segments]
    num_segments = len(lengths)
    streams = token_ids[: num_streams * stream_length].reshape(num_streams, stream_length)  # [S, L]
    starts = numpy.concatenate([[0], numpy.cumsum(lengths)])  # segment t: stream positions [starts[t], starts[t+1])
    # Rows t * S + s, flattened: segment t of every stream is the [S, l_t] slice streams[:, starts[t]:starts[t+1]],
    # read row-major; one Arrow list array holds rows of any length without padding.
    row_offsets = numpy.concatenate([[0], numpy.cumsum(numpy.repeat(lengths, num_streams))])
    columns = {}
    for name, shift in (("input_ids", 0), ("shift_labels", 1)):
        values = numpy.concatenate(
            [streams[:, start + shift : end + shift].reshape(-1) for start, end in itertools.pairwise(starts)]
        )
        columns[name] = pyarrow.ListArray.from_arrays(
            pyarrow.array(row_offsets, pyarrow.int64()), pyarrow.array(values)
        )
    columns["stream_index"] = pyarrow.array(numpy.tile(numpy.arange(num_streams), num_segments))
    columns["segment_index"] = pyarrow.array(numpy.repeat(numpy.arange(num_segments), num_streams))
    return datasets.Dataset(pyarrow.table(columns))


# ---------------------------------------------------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------------------------------------------------


def perplexity(loss: float) -> float:
    """exp(loss): the perplexity of a mean next-token cross-entropy in nats; inf when that overflows."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def should_start_averaging(losses: list[float], loss: float, nonmono: int) -> bool:
    """NT-ASGD's trigger (Merity et al. 2017, awd-lstm-lm `main.py`): with `losses` the earlier evaluations' losses,
    start averaging when there are more than `nonmono` of them and `loss` is worse than the best of all but the last
    `nonmono` ones (the validation loss has not improved on that old best for `nonmono` evaluations)."""
    return len(losses) > nonmono and loss > min(losses[:-nonmono])


class WeightAverage:
    """NT-ASGD's state: the evaluation losses seen, the step at which averaging started, and from then on the
    equal-weight running average of the parameters after every optimizer step (averaged SGD: after n steps,
    average = (p_1 + ... + p_n) / n, as `torch.optim.ASGD(t0=0, lambd=0)` keeps it in awd-lstm-lm).

    `LanguageModelingTrainer` keeps one when `nt_asgd` is on and saves it in every checkpoint.
    """

    def __init__(self, nonmono: int):
        self.nonmono = nonmono
        self.losses: list[float] = []  # the evaluation losses, in order
        self.start_step: int | None = None  # the step after which the trigger fired
        self.count = 0  # steps averaged
        self.average: dict[str, torch.Tensor] = {}  # parameter name -> average (the model's shapes and devices)

    def observe(self, loss: float, step: int) -> bool:
        """Record an evaluation loss; True when it starts the averaging (once)."""
        starts = self.start_step is None and should_start_averaging(self.losses, loss, self.nonmono)
        if starts:
            self.start_step = step
        self.losses.append(loss)
        return starts

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the parameters after an optimizer step into the average (only once averaging has started)."""
        if self.start_step is None:
            return
        self.count += 1
        for name, parameter in model.named_parameters():
            if self.count == 1:
                self.average[name] = parameter.detach().clone()
            else:
                self.average[name].add_(parameter.detach() - self.average[name], alpha=1.0 / self.count)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for name, parameter in model.named_parameters():
            parameter.copy_(self.average[name])

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the average inside the block and its own parameters again after it (AWD's evaluation)."""
        if self.count == 0:
            yield
            return
        with torch.no_grad():
            own = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    parameter.copy_(own[name])

    def save(self, path: str | os.PathLike) -> None:
        tensors = {
            "losses": torch.tensor(self.losses, dtype=torch.float64),  # the exact Python floats
            "start_step": torch.tensor([-1 if self.start_step is None else self.start_step]),
            "count": torch.tensor([self.count]),
        }
        tensors.update({f"average.{name}": value.detach().cpu().contiguous() for name, value in self.average.items()})
        save_file(tensors, os.fspath(path), metadata={"format": "hf_rnn-nt-asgd", "nonmono": str(self.nonmono)})

    def load(self, path: str | os.PathLike, device: torch.device) -> None:
        tensors = load_file(os.fspath(path))
        self.losses = tensors["losses"].tolist()
        start_step = int(tensors["start_step"][0])
        self.start_step = None if start_step < 0 else start_step
        self.count = int(tensors["count"][0])
        prefix = "average."
        self.average = {
            name[len(prefix) :]: value.to(device) for name, value in tensors.items() if name.startswith(prefix)
        }


class TimeBudgetCallback(TrainerCallback):
    """Stop training at the first optimizer step that ends more than `minutes` after training began.

    With several processes the decision is the main process's clock, sent to all (every process must stop at the
    same step). With `save_strategy` other than "no", a checkpoint is saved at that step, so the run can be resumed.
    """

    def __init__(self, minutes: float):
        self.seconds = minutes * 60.0
        self.start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        over = torch.tensor([time.monotonic() - self.start > self.seconds], dtype=torch.int64, device=args.device)
        if args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(over, src=0)
        if bool(over.item()) and not control.should_training_stop:
            logger.info(
                f"`max_train_minutes`={self.seconds / 60:g} reached at step {state.global_step}: training stops."
            )
            control.should_training_stop = True
            control.should_save = args.save_strategy != SaveStrategy.NO
        return control


def _torch_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's `AcceleratedOptimizer` (whose `step` calls it): its step hooks run."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


class LanguageModelingTrainer(Trainer):
    """`Trainer` that reports `{prefix}_perplexity` = exp(`{prefix}_loss`) with every evaluation (logs, TensorBoard),
    and saves every checkpoint atomically.

    Atomic checkpoints: transformers' Trainer writes straight into `checkpoint-N`, so a run killed while saving leaves
    a folder that `resume_from_checkpoint` takes for the last checkpoint. Here every process writes into
    `tmp-checkpoint-N` (the weights, optimizer, scheduler, random states, `trainer_state.json` and whatever
    `_save_extra_checkpoint_files` adds), the files are flushed to disk, and the main process renames the folder to
    `checkpoint-N` only then (one rename: it exists complete or not at all); barriers keep several processes in step.
    A `tmp-checkpoint-*` left by a killed save is ignored by `get_last_checkpoint` and by rotation, and removed at the
    next save.

    With `args.nt_asgd` (`LanguageModelingTrainingArguments`), NT-ASGD as in AWD-LSTM: every evaluation during
    `train()` feeds `WeightAverage.observe`; once it triggers, the parameters after every optimizer step are averaged,
    evaluations swap the average in (and the model's own parameters back afterwards), and at the end of `train()` the
    model takes the average for good (what the recipe evaluates and saves). Checkpoints hold the current parameters
    (`model.safetensors`) and the trigger state with the average (`nt_asgd_state.safetensors`), so resuming is exact.
    With `args.max_train_minutes`, a `TimeBudgetCallback` stops training when the time is up.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_average = WeightAverage(self.args.nt_asgd_nonmono) if getattr(self.args, "nt_asgd", False) else None
        self._training = False  # evaluations inside train() feed NT-ASGD; the recipe's final one does not
        self._model_holds_average = False  # after train(): evaluations need no swap
        self._hooked_optimizer: torch.optim.Optimizer | None = None
        if getattr(self.args, "max_train_minutes", None) is not None:
            self.add_callback(TimeBudgetCallback(self.args.max_train_minutes))

    def create_optimizer(self, *args, **kwargs):
        optimizer = super().create_optimizer(*args, **kwargs)
        target = _torch_optimizer(optimizer)
        if target is not self._hooked_optimizer:  # once per optimizer (Trainer may call this again)
            self._hooked_optimizer = target
            self._register_optimizer_hooks(target)
        return optimizer

    def _register_optimizer_hooks(self, optimizer: torch.optim.Optimizer) -> None:
        """Hook: run code around every optimizer step (torch's step pre- and post-hooks)."""
        if self.weight_average is not None:
            optimizer.register_step_post_hook(lambda *_: self.weight_average.update(self.model))

    def train(self, *args, **kwargs):
        self._training = True
        try:
            output = super().train(*args, **kwargs)
        finally:
            self._training = False
        if self.weight_average is not None:
            if self.weight_average.count > 0:
                self.weight_average.copy_to(self.model)
                logger.info(
                    f"NT-ASGD: the model now holds the average of the parameters after the last "
                    f"{self.weight_average.count} steps (averaging began after step {self.weight_average.start_step})."
                )
                self._model_holds_average = True
            else:
                logger.info("NT-ASGD: the validation loss never stopped improving; no averaging took place.")
        return output

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        prefix = kwargs.get("metric_key_prefix", args[2] if len(args) > 2 else "eval")
        if self.weight_average is None or self._model_holds_average:
            return super().evaluate(*args, **kwargs)
        with self.weight_average.applied(self.model):
            metrics = super().evaluate(*args, **kwargs)
        loss = metrics.get(f"{prefix}_loss")
        if self._training and prefix == "eval" and loss is not None:
            best = min(self.weight_average.losses[: -self.weight_average.nonmono] or [math.inf])
            if self.weight_average.observe(loss, self.state.global_step):
                logger.info(
                    f"NT-ASGD: validation loss {loss:.4f} at step {self.state.global_step} is worse than {best:.4f}, "
                    f"the best before the last {self.weight_average.nonmono} evaluations: averaging the parameters "
                    "from the next step on."
                )
        return metrics

    def _save_extra_checkpoint_files(self, folder: str) -> None:
        """Hook: write more files into the checkpoint being saved (`folder` is its temporary name). Every process
        calls it."""
        if self.weight_average is not None and self.args.should_save:  # the same on every process: one file
            os.makedirs(folder, exist_ok=True)
            self.weight_average.save(os.path.join(folder, NT_ASGD_STATE_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        path = os.path.join(resume_from_checkpoint, NT_ASGD_STATE_NAME)
        if self.weight_average is not None:
            if os.path.isfile(path):
                self.weight_average.load(path, self.args.device)
            else:
                logger.warning(
                    f"{resume_from_checkpoint!r} holds no {NT_ASGD_STATE_NAME} (it was saved without `nt_asgd`): "
                    "NT-ASGD starts afresh, with no earlier evaluations."
                )
        elif os.path.isfile(path):
            logger.warning(f"{resume_from_checkpoint!r} holds NT-ASGD state but `nt_asgd` is off: it is not used.")

    def _save_checkpoint(self, model, trial) -> None:
        # transformers 5.x `Trainer._save_checkpoint`, writing into a temporary folder renamed at the end
        step = self.state.global_step
        if self.hp_search_backend is None and trial is None:
            self.store_flos()
        run_dir = self._get_output_dir(trial=trial)
        final_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")
        output_dir = os.path.join(run_dir, f"{TEMPORARY_CHECKPOINT_PREFIX}-{step}")
        if self.args.should_save and os.path.isdir(run_dir):
            for leftover in Path(run_dir).glob(f"{TEMPORARY_CHECKPOINT_PREFIX}-*"):  # from a save that was killed
                shutil.rmtree(leftover, ignore_errors=True)
        self.accelerator.wait_for_everyone()  # nobody writes into the folder before the leftover is gone

        self.save_model(output_dir, _internal_call=True)
        if not self.args.save_only_model:
            self._save_optimizer_and_scheduler(output_dir)
            self._save_scaler(output_dir)
            self._save_rng_state(output_dir)
        self._save_extra_checkpoint_files(output_dir)
        if self.args.should_save:
            # Update `ExportableState` callbacks and `TrainerControl` state to where we are now
            for callback in self.callback_handler.callbacks + [self.control]:
                if isinstance(callback, ExportableState):
                    name, callback_state = callback.__class__.__name__, callback.state()
                    if isinstance(self.state.stateful_callbacks[name], list):
                        self.state.stateful_callbacks[name].append(callback_state)
                    else:
                        self.state.stateful_callbacks[name] = callback_state
            os.makedirs(output_dir, exist_ok=True)
            self.state.save_to_json(os.path.join(output_dir, TRAINER_STATE_NAME))
        _flush_folder(output_dir)  # each process its own files: on disk before the rename makes them count
        self.accelerator.wait_for_everyone()  # every process has written its files (random states, TBPTT states)

        if self.args.should_save:
            if os.path.isdir(final_dir):  # a checkpoint of this step from an earlier run (resumed from before it)
                shutil.rmtree(final_dir)
            os.replace(output_dir, final_dir)
            _flush_folder(run_dir, files=False)  # the rename itself
        self.accelerator.wait_for_everyone()  # `checkpoint-N` exists for everyone from here on

        if self.args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST) and (
            self.state.best_global_step
        ):
            best_checkpoint_dir = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}")
            if os.path.exists(best_checkpoint_dir):
                self.state.best_model_checkpoint = best_checkpoint_dir
        if self.args.push_to_hub:
            self._push_from_checkpoint(final_dir)
        if self.args.should_save:  # maybe delete older checkpoints (`save_total_limit`)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        loss = output.metrics.get(f"{prefix}_loss")
        if loss is not None:
            output.metrics[f"{prefix}_perplexity"] = perplexity(loss)
        return output


class CarriedState:
    """The recurrent state a group of streams ended with, and where: which streams, after which segment.

    `StatefulLMTrainer` keeps one for training and one for evaluation.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.cache: RNNCache | None = None
        self.stream_index: torch.Tensor | None = None  # [B] on the CPU
        self.segment_index: int | None = None

    def initial_cache(self, stream_index: torch.Tensor, segment_index: torch.Tensor, phase: str) -> RNNCache | None:
        """The state a batch of rows (`stream_index`, `segment_index`: [B]) starts from: none (zeros) for segment 0,
        else the carried state, which must come from segment t - 1 of the same streams."""
        segments = segment_index.unique()
        if len(segments) != 1:
            raise RuntimeError(
                f"Stateful TBPTT: a {phase} batch mixes segments {segments.tolist()}; each batch must hold one segment "
                "of its streams. Rows must be read in the order of `build_stateful_dataset` (sequential sampling)."
            )
        segment = int(segments)
        if segment == 0:  # the start of the streams: a new epoch, or a new evaluation
            self.reset()
            return None
        stream_index = stream_index.cpu()
        if self.cache is None or self.segment_index != segment - 1 or not torch.equal(self.stream_index, stream_index):
            carried = (
                "no state"
                if self.cache is None
                else f"the state of segment {self.segment_index} of streams {self.stream_index.tolist()}"
            )
            raise RuntimeError(
                f"Stateful TBPTT: a {phase} batch holds segment {segment} of streams {stream_index.tolist()}, but the "
                f"carried state is {carried}. Rows must be read in the order of `build_stateful_dataset` (sequential "
                "sampling, no shuffling, the dataset built for this batch size and number of processes)."
            )
        return self.cache

    def update(self, cache: RNNCache, stream_index: torch.Tensor, segment_index: torch.Tensor) -> None:
        """Keep the state a batch ended with, detached: the next batch's gradients stop here (truncated BPTT)."""
        self.cache = cache.detach()
        self.stream_index = stream_index.cpu()
        self.segment_index = int(segment_index.max())

    def save(self, path: str | os.PathLike, world_size: int) -> None:
        """Write the state (each layer's tensors, the streams, the segment) to a safetensors file."""
        tensors = {"stream_index": self.stream_index.contiguous(), "segment_index": torch.tensor([self.segment_index])}
        for layer_index in range(len(self.cache.layers)):
            for state_index, state in enumerate(self.cache.get_layer_state(layer_index)):
                tensors[f"layer_{layer_index}.state_{state_index}"] = state.detach().cpu().contiguous()  # [B, D, H]
        save_file(tensors, os.fspath(path), metadata={"world_size": str(world_size), "format": "hf_rnn-tbptt"})

    def load(self, path: str | os.PathLike, config: RNNConfig, device: torch.device) -> None:
        tensors = load_file(os.fspath(path))
        cache = RNNCache(config)
        for layer_index in range(config.num_hidden_layers):
            state = tuple(
                tensors[f"layer_{layer_index}.state_{state_index}"].to(device)
                for state_index in range(config.num_state_tensors)
            )
            cache.set_layer_state(layer_index, state)
        self.cache = cache
        self.stream_index = tensors["stream_index"]
        self.segment_index = int(tensors["segment_index"][0])


def tbptt_state_file_name(process_index: int, world_size: int) -> str:
    """`tbptt_state.safetensors` with one process, `tbptt_state_{rank}.safetensors` with several."""
    return TBPTT_STATE_NAME if world_size <= 1 else TBPTT_STATE_NAME.replace(".", f"_{process_index}.", 1)


class StatefulLMTrainer(LanguageModelingTrainer):
    """`Trainer` for stateful truncated backpropagation through time over a `build_stateful_dataset` dataset.

    - Rows are read in dataset order (a sequential sampler, whatever `train_sampling_strategy` says), so each batch
      holds the next segment of the same streams (see `build_stateful_dataset` for several processes).
    - Each batch starts from the state the previous batch of its streams ended with, detached (gradients flow within
      a segment only); a batch of segment 0 starts from zeros, so the state is reset at every epoch start and at the
      start of every evaluation. The state is passed in as `cache=`, with `use_cache=True`. Training and evaluation
      keep separate states, so an evaluation in the middle of an epoch does not disturb training.
    - Gradient accumulation: consecutive micro-batches are consecutive segments of the same streams, so carrying the
      state across them is still right; every row has `block_size` targets, so the accumulated mean loss equals the
      mean over one large batch.
    - Checkpoints hold the carried training state (`tbptt_state.safetensors`, one file per process), and
      `resume_from_checkpoint` restores it: a resumed run ends with the same weights as an uninterrupted one.
    - The targets are `shift_labels` (already aligned with the inputs), which `RNNForCausalLM.forward` takes as a
      keyword: they are the trainer's `label_names`, so the column is kept and evaluation computes a loss.
    - Variable BPTT (`block_size` given, rows of other lengths: `build_stateful_dataset(variable_length_seed=...)`):
      each optimizer step's learning rate is scaled by l / block_size, l the mean length of its micro-batches, and
      restored after the step (awd-lstm-lm: `lr2 * seq_len / args.bptt`); under gradient accumulation each
      micro-batch's loss is weighted by its length / l, so that the step's loss is the mean over all its tokens (one
      large batch). With one micro-batch per step this is exactly AWD's update.
    """

    def __init__(self, *args, block_size: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_names = ["shift_labels"]
        self.train_state = CarriedState()
        self.eval_state = CarriedState()
        self.block_size = block_size  # the nominal BPTT length that learning rates are scaled against
        self._step_lengths: list[int] = []  # lengths of the micro-batches of the coming optimizer step

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._step_lengths = [batch["input_ids"].shape[-1] for batch in batch_samples]
        return batch_samples, num_items_in_batch

    def _register_optimizer_hooks(self, optimizer: torch.optim.Optimizer) -> None:
        super()._register_optimizer_hooks(optimizer)
        if self.block_size is None:
            return
        unscaled: list[float] = []

        def scale(optimizer, *_):
            if self._step_lengths:
                factor = sum(self._step_lengths) / len(self._step_lengths) / self.block_size
                unscaled[:] = [group["lr"] for group in optimizer.param_groups]
                for group in optimizer.param_groups:
                    group["lr"] = group["lr"] * factor

        def restore(optimizer, *_):
            for group, learning_rate in zip(optimizer.param_groups, unscaled):
                group["lr"] = learning_rate
            unscaled.clear()

        optimizer.register_step_pre_hook(scale)
        optimizer.register_step_post_hook(restore)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        # keep the position columns through `remove_unused_columns`: `compute_loss` reads them
        self._signature_columns += [name for name in POSITION_COLUMNS if name not in self._signature_columns]

    def _get_train_sampler(self, train_dataset=None) -> SequentialSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return SequentialSampler(dataset)

    def _get_eval_sampler(self, eval_dataset) -> SequentialSampler:
        return SequentialSampler(eval_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        missing = [name for name in POSITION_COLUMNS + ("shift_labels",) if name not in inputs]
        if missing:
            raise ValueError(
                f"StatefulLMTrainer needs the columns {missing} in every batch: build the dataset with "
                "`build_stateful_dataset`."
            )
        stream_index, segment_index = inputs["stream_index"], inputs["segment_index"]
        carried = self.train_state if model.training else self.eval_state
        cache = carried.initial_cache(stream_index, segment_index, "training" if model.training else "evaluation")
        model_inputs = {key: value for key, value in inputs.items() if key not in POSITION_COLUMNS}
        model_inputs.update(cache=cache, use_cache=True)
        loss, outputs = super().compute_loss(
            model, model_inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        carried.update(outputs.cache, stream_index, segment_index)
        if model.training and self.block_size is not None and len(set(self._step_lengths)) > 1:
            # rows of several lengths in this step: weight by tokens (Trainer divides every micro-batch by their count)
            mean_length = sum(self._step_lengths) / len(self._step_lengths)
            loss = loss * (inputs["input_ids"].shape[-1] / mean_length)
        return (loss, outputs) if return_outputs else loss

    def _save_extra_checkpoint_files(self, folder: str) -> None:
        # into the temporary folder, renamed to checkpoint-N with everything else (LanguageModelingTrainer)
        super()._save_extra_checkpoint_files(folder)
        if self.train_state.cache is not None:
            os.makedirs(folder, exist_ok=True)
            file_name = tbptt_state_file_name(self.args.process_index, self.args.world_size)
            self.train_state.save(os.path.join(folder, file_name), self.args.world_size)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        path = os.path.join(
            resume_from_checkpoint, tbptt_state_file_name(self.args.process_index, self.args.world_size)
        )
        if not os.path.isfile(path):
            found = sorted(name for name in os.listdir(resume_from_checkpoint) if name.startswith("tbptt_state"))
            raise ValueError(
                f"Cannot resume stateful TBPTT from {resume_from_checkpoint!r}: it has no {os.path.basename(path)} "
                + (
                    f"(it has {found}: it was saved by a run with another number of processes, whose streams differ)."
                    if found
                    else "(it was not saved by a stateful run)."
                )
            )
        self.train_state.load(path, self.model.config, self.args.device)


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


def default_generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Sampling defaults for a small language model: nucleus sampling at temperature 0.8, 100 new tokens, stopping at
    EOS (the document separator the recipe trains on)."""
    return GenerationConfig(
        do_sample=True,
        temperature=0.8,
        top_k=0,  # nucleus sampling alone decides which tokens are allowed
        top_p=0.95,
        max_new_tokens=100,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def plot_loss_curve(
    log_history: list[dict[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
    vocab_size: int | None = None,
) -> bool:
    """Training and evaluation loss against the optimizer step, from `trainer.state.log_history`, saved as a PNG;
    with `vocab_size`, also the loss of a uniform guess over the vocabulary, ln(vocab_size), for scale.

    Returns False (and logs a warning) when matplotlib is missing: it is an optional dependency
    (`pip install hf-rnn[train]`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no loss curve (`pip install hf-rnn[train]` to get one).")
        return False
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if train:
        axes.plot(*zip(*train), label="training loss", color="tab:blue", linewidth=1.2)
    if evaluation:
        axes.plot(*zip(*evaluation), label="validation loss", color="tab:orange", marker="o", linewidth=1.5)
    if vocab_size is not None and (train or evaluation):
        axes.axhline(
            math.log(vocab_size), color="gray", linestyle="--", linewidth=1, label=f"uniform guess, ln {vocab_size}"
        )
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("cross-entropy (nats per token)")
    axes.set_title(title or "Language model training")
    axes.grid(alpha=0.3)
    if train or evaluation:
        axes.legend()
    figure.tight_layout()
    figure.savefig(os.fspath(path), dpi=120)
    plt.close(figure)
    return True


def _publish(staging: Path, output_dir: Path) -> None:
    """Move the entries of `staging` into `output_dir` so that it never looks like a complete model before the end:
    an older `config.json` is removed first and the new one moved in last (each move is a rename)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.json").unlink(missing_ok=True)
    entries = sorted(staging.iterdir(), key=lambda entry: entry.name == "config.json")  # config.json last
    for entry in entries:
        target = output_dir / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()


# ---------------------------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------------------------


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The `checkpoint-N` folder of `folder` with the largest N that is complete, or None.

    Complete: it holds `trainer_state.json`, which Trainer writes after everything else. Checkpoints saved by this
    recipe appear only complete (see `LanguageModelingTrainer`); the check also passes over a folder part-written by
    another writer (Trainer itself writes in place). `tmp-checkpoint-N` folders are never candidates.
    """
    if not os.path.isdir(folder):
        return None
    steps = {}
    for entry in os.scandir(folder):
        prefix, _, step = entry.name.partition("-")
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and step.isascii() and entry.is_dir():
            steps[int(step)] = entry.path
    for step in sorted(steps, reverse=True):
        if os.path.isfile(os.path.join(steps[step], TRAINER_STATE_NAME)):
            return steps[step]
        logger.warning(f"Passing over the incomplete checkpoint {steps[step]!r} (no {TRAINER_STATE_NAME}).")
    return None


def _flush_folder(folder: str | os.PathLike, files: bool = True) -> None:
    """fsync the files directly in `folder` (with `files`) and the folder itself, where the platform allows it, so
    that a rename done after this does not publish files whose data is still only in memory."""
    if not os.path.isdir(folder):
        return
    paths = [entry.path for entry in os.scandir(folder) if entry.is_file()] if files else []
    for path in paths:
        with open(path, "rb") as file:
            os.fsync(file.fileno())
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _resolve_resume(training_args: TrainingArguments) -> str | None:
    """The checkpoint to resume from: a path, or the last one in `output_dir` for "true"."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() == "true":
        last = last_complete_checkpoint(training_args.output_dir)
        if last is None:
            raise ValueError(
                f"`resume_from_checkpoint` true: `output_dir` {training_args.output_dir!r} holds no complete "
                "checkpoint-N folder (one with a trainer_state.json)."
            )
        return last
    if not os.path.isfile(os.path.join(value, "trainer_state.json")):
        raise ValueError(
            f"`resume_from_checkpoint` {value!r} is not a Trainer checkpoint folder (no trainer_state.json)."
        )
    return value


def _check_output_dir(output_dir: Path, overwrite: bool, resuming: bool) -> None:
    """An existing non-empty `output_dir` is only used to resume, or replaced with `overwrite` when it holds an earlier
    run (a saved model, a tokenizer or checkpoints), never a folder of other files."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"`output_dir` {str(output_dir)!r} exists and is not a folder.")
    if resuming or not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"`output_dir` {str(output_dir)!r} already exists and is not empty; choose another folder, pass "
            "`--resume_from_checkpoint true` to continue the run it holds, or `--overwrite` to start over."
        )
    names = {entry.name for entry in output_dir.iterdir()}
    if not (
        names & {"config.json", "tokenizer_config.json"}
        or any(n.startswith((PREFIX_CHECKPOINT_DIR, TEMPORARY_CHECKPOINT_PREFIX)) for n in names)
    ):
        raise ValueError(
            f"`--overwrite` replaces only a folder holding an earlier run (a saved model or checkpoints), but "
            f"`output_dir` {str(output_dir)!r} holds neither; choose an empty or new folder."
        )


def _load_or_train_tokenizer(
    model_args: ModelArguments, train_split: datasets.Dataset, text_column: str, training_args: TrainingArguments
) -> PreTrainedTokenizerBase:
    source = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if source is not None:
        argument = "tokenizer_name_or_path" if model_args.tokenizer_name_or_path else "model_name_or_path"
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as error:
            hint = (
                " (it holds no tokenizer: pass `--tokenizer_name_or_path`)" if argument == "model_name_or_path" else ""
            )
            raise ValueError(f"`{argument}`: cannot load a tokenizer from {source!r}{hint}: {error}") from error
    else:
        tokenizer = _train_tokenizer_once(train_split, text_column, model_args.tokenizer_vocab_size, training_args)
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"The tokenizer from {source!r} has no EOS token; the recipe puts one between documents. Set "
            "`eos_token` on it and save it, or let the recipe train one."
        )
    return tokenizer


def _train_tokenizer_once(
    train_split: datasets.Dataset, text_column: str, vocab_size: int, training_args: TrainingArguments
) -> PreTrainedTokenizerBase:
    """A byte-level BPE trained on the train split, on the main process only; the other processes receive its files
    (every process must use the very same vocabulary)."""

    def texts() -> Iterator[str]:
        for batch in train_split.iter(batch_size=1000):
            yield from batch[text_column]

    if training_args.world_size <= 1:
        return train_tokenizer(texts(), kind="bpe", vocab_size=vocab_size)

    from torch import distributed

    payload: list[Any] = [None]
    if training_args.process_index == 0:
        try:
            tokenizer = train_tokenizer(texts(), kind="bpe", vocab_size=vocab_size)
            with tempfile.TemporaryDirectory() as folder:
                tokenizer.save_pretrained(folder)
                payload = [{name: Path(folder, name).read_bytes() for name in os.listdir(folder)}]
        except ValueError as error:
            payload = [error]  # sent on, so that every process fails with it instead of waiting forever
    distributed.broadcast_object_list(payload, src=0)
    if isinstance(payload[0], ValueError):
        raise payload[0]
    if training_args.process_index == 0:
        return tokenizer
    with tempfile.TemporaryDirectory() as folder:
        for name, content in payload[0].items():
            Path(folder, name).write_bytes(content)
        return AutoTokenizer.from_pretrained(folder)


@torch.no_grad()
def awd_weight_init(model: RNNForCausalLM) -> RNNForCausalLM:
    """awd-lstm-lm's initial weights (as pytorch/examples word_language_model): every recurrent weight and bias
    uniform(+-1/sqrt(hidden_size)) (PyTorch's `reset_parameters`), the embedding (and an untied LM head) uniform(+-0.1),
    the LM head's bias 0.

    Why: hf_rnn's own initialisation (Glorot input weights, orthogonal recurrent weights, forget-gate bias 1) suits
    Adam, but with AWD's SGD at learning rate 30 (clipped at 0.25) it learns far slower: on PTB, a 3-layer
    200/400/400/200 LSTM after one epoch reached validation perplexity 947 with it and 270 with this (H200, 2026-11).
    """
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.reset_parameters()
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    torch.nn.init.uniform_(embedding.weight, -0.1, 0.1)
    if head.weight is not embedding.weight:
        torch.nn.init.uniform_(head.weight, -0.1, 0.1)
    if head.bias is not None:
        torch.nn.init.zeros_(head.bias)
    return model


def model_config_options(model_args: ModelArguments) -> dict[str, Any]:
    """The architecture and regularisation options given (not None), as `RNNConfig` keyword arguments."""
    given = {name: getattr(model_args, name) for name in ARCHITECTURE_FIELDS + REGULARIZATION_FIELDS}
    return {name: value for name, value in given.items() if value is not None}


def _build_model(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase, seed: int) -> RNNForCausalLM:
    given = model_config_options(model_args)
    if model_args.model_name_or_path is None:
        set_seed(seed)  # the same initial weights on every process and in every run with this seed
        config = RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **given,
        )
        model = RNNForCausalLM(config)
        return awd_weight_init(model) if model_args.weight_init == "awd" else model

    path = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"`model_name_or_path`: cannot load a model config from {path!r}: {error}") from error
    if getattr(config, "model_type", None) != RNNConfig.model_type:
        raise ValueError(
            f"`model_name_or_path` {path!r} is a {config.model_type!r} model, not an hf_rnn one (model_type "
            f"{RNNConfig.model_type!r})."
        )
    different = {
        name: (value, getattr(config, name, None))  # None: a checkpoint saved before the field existed
        for name, value in given.items()
        if name in ARCHITECTURE_FIELDS and value != getattr(config, name, None)
    }
    if different:
        details = ", ".join(f"{name}={value!r} (checkpoint: {saved!r})" for name, (value, saved) in different.items())
        raise ValueError(
            f"Continuing from {path!r} keeps its architecture, but these options differ from it: {details}. Leave them "
            "out, or train a new model."
        )
    check_tokenizer_fits(config, tokenizer, source=path)
    if config.bidirectional:
        raise ValueError(f"`model_name_or_path` {path!r} is bidirectional: it cannot be a causal language model.")
    regularizers = {name: value for name, value in given.items() if name in REGULARIZATION_FIELDS}
    return RNNForCausalLM.from_pretrained(path, **regularizers)


def _prepare_datasets(
    data_args: DataArguments,
    tokenized: datasets.DatasetDict,
    training_args: TrainingArguments,
) -> tuple[datasets.Dataset, datasets.Dataset, datasets.Dataset | None]:
    """Training, evaluation and (with a "test" split) test rows for the chosen batching, checked to hold at least one
    row each. The test rows are cut as the validation rows are, from the whole split (`max_eval_samples` does not
    apply)."""
    block_size = data_args.block_size
    if data_args.batching == "blocks":
        rows = {}
        for split in [name for name in ("train", "validation", "test") if name in tokenized]:
            rows[split] = build_block_dataset(
                tokenized[split], block_size, data_args.preprocessing_num_workers, f"Grouping {split} into blocks"
            )
            if len(rows[split]) == 0:
                token_count = sum(len(ids) for ids in tokenized[split]["input_ids"])
                raise ValueError(
                    f"The {split} split has {token_count} tokens, fewer than one block of `block_size`={block_size}: "
                    "give more text or lower `block_size`."
                )
        train, validation = rows["train"], rows["validation"]
        if data_args.max_train_samples is not None:
            train = train.select(range(min(data_args.max_train_samples, len(train))))
        if data_args.max_eval_samples is not None:
            validation = validation.select(range(min(data_args.max_eval_samples, len(validation))))
        return train, validation, rows.get("test")

    # stateful: S = per-device batch size x number of processes streams (see build_stateful_dataset)
    world_size = max(1, training_args.world_size)
    # variable BPTT: the training segment lengths, drawn from the data seed (the same on every process and on resume)
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    datasets_by_split = []
    for split, batch_size, max_rows in (
        ("train", training_args.per_device_train_batch_size, data_args.max_train_samples),
        ("validation", training_args.per_device_eval_batch_size, data_args.max_eval_samples),
        ("test", training_args.per_device_eval_batch_size, None),
    ):
        if split not in tokenized:
            datasets_by_split.append(None)
            continue
        num_streams = batch_size * world_size
        max_segments = None
        if max_rows is not None:
            max_segments = max_rows // num_streams
            if max_segments < 1:
                argument = "max_train_samples" if split == "train" else "max_eval_samples"
                raise ValueError(
                    f"`{argument}`={max_rows} is less than one segment of every stream ({num_streams} rows: batch size "
                    f"x {world_size} processes) in stateful batching; raise it."
                )
        variable_length_seed = seed if split == "train" and data_args.variable_bptt else None
        try:
            datasets_by_split.append(
                build_stateful_dataset(
                    concatenated_token_ids(tokenized[split]),
                    num_streams,
                    block_size,
                    max_segments,
                    variable_length_seed,
                )
            )
        except ValueError as error:
            raise ValueError(f"The {split} split: {error}") from None
    return tuple(datasets_by_split)


def _dataset_description(data_args: DataArguments) -> str:
    if data_args.dataset_name:
        return data_args.dataset_name + (f" ({data_args.dataset_config})" if data_args.dataset_config else "")
    if data_args.train_files:
        return "local files: " + ", ".join(Path(file).name for file in data_args.train_files)
    return (
        "the hf_rnn default corpus (the Python standard library's documentation: pydoc topics and module docstrings, "
        "hf_rnn.data.default_corpus_texts)"
    )


def run_language_modeling(
    model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments
) -> dict[str, float]:
    """Load, tokenise, train, evaluate and save, as described in the module docstring. Returns `all_results`: the
    training metrics (with `train_steps`, and `nt_asgd_start_step` when averaging began), the validation `eval_loss`
    / `eval_perplexity`, and with `test_files` the `test_loss` / `test_perplexity`.

    Raises:
        ValueError: for bad input (files, columns, tokenizer, options), before any training starts and before
            `output_dir` is created.
    """
    # 1. Checks that need no data
    output_dir = Path(training_args.output_dir).absolute()
    resume_from = _resolve_resume(training_args)
    _check_output_dir(output_dir, data_args.overwrite, resuming=resume_from is not None)
    inputs = [*(data_args.train_files or []), *(data_args.validation_files or []), *(data_args.test_files or [])]
    inputs += [path for path in (model_args.model_name_or_path, model_args.tokenizer_name_or_path) if path]
    for path in inputs:
        if os.path.exists(path) and output_dir.resolve() in (Path(path).resolve(), *Path(path).resolve().parents):
            raise ValueError(
                f"`output_dir` {str(output_dir)!r} holds the input {path!r}, which the run would overwrite; choose "
                "another `output_dir`."
            )
    if model_args.tokenizer_name_or_path is None and model_args.model_name_or_path is None:
        _check_tokenizer_arguments("bpe", model_args.tokenizer_vocab_size, ["<pad>", "<s>", "</s>", "<unk>"])
    if model_args.model_name_or_path is None:
        # the architecture options, checked by RNNConfig itself (sizes, tying, dropouts) with a stand-in vocabulary
        RNNConfig(vocab_size=1, **model_config_options(model_args))
    missing = [file for file in data_args.test_files or [] if not os.path.isfile(file)]
    if missing:
        raise ValueError(f"`test_files`: these files do not exist: {missing}.")
    for argument in ("train_files", "validation_files", "test_files"):
        for file in getattr(data_args, argument) or []:
            if os.path.isfile(file) and os.path.getsize(file) == 0:
                raise ValueError(f"`{argument}`: the file {file!r} is empty.")
    if data_args.batching == "stateful" and getattr(training_args.accelerator_config, "split_batches", False):
        raise ValueError(
            "Stateful batching gives every process its own streams, one row per stream per batch; accelerate's "
            "`split_batches=True` slices batches differently. Leave `split_batches` off with `--batching stateful`."
        )
    if data_args.batching == "stateful" and training_args.train_sampling_strategy not in ("random", "sequential"):
        logger.warning(
            "Stateful batching reads rows in order: "
            f"`train_sampling_strategy`={training_args.train_sampling_strategy!r} "
            "is ignored."
        )

    # 2. Texts, tokenizer, tokens
    with training_args.main_process_first(desc="loading the dataset"):
        splits = load_text_dataset(
            dataset_name=data_args.dataset_name,
            dataset_config=data_args.dataset_config,
            train_files=data_args.train_files,
            validation_files=data_args.validation_files,
            text_column=data_args.text_column,
            validation_fraction=data_args.validation_fraction,
            seed=data_args.validation_split_seed,
            cache_dir=data_args.cache_dir,
        )
        if data_args.test_files:
            # the test files read as the validation files are (format, text column, blank lines)
            try:
                test_split = load_text_dataset(
                    train_files=data_args.test_files,
                    validation_files=data_args.test_files,
                    text_column=data_args.text_column,
                    cache_dir=data_args.cache_dir,
                )["validation"]
            except ValueError as error:
                raise ValueError(f"`test_files`: {error}") from None
            splits = datasets.DatasetDict({**splits, "test": test_split})
    for split, dataset in splits.items():
        if len(dataset) == 0:
            raise ValueError(f"The {split} split holds no text (its files are empty or hold only blank lines).")
    tokenizer = _load_or_train_tokenizer(model_args, splits["train"], data_args.text_column, training_args)
    rows = f"{data_args.block_size} tokens" + (" on average (variable BPTT)" if data_args.variable_bptt else "")
    with training_args.main_process_first(desc="tokenizing"):
        tokenized = datasets.DatasetDict(
            {
                split: tokenize_documents(
                    dataset,
                    tokenizer,
                    data_args.text_column,
                    data_args.preprocessing_num_workers,
                    f"Tokenizing {split}",
                )
                for split, dataset in splits.items()
            }
        )
        train_dataset, eval_dataset, test_dataset = _prepare_datasets(data_args, tokenized, training_args)

    # 3. Model
    model = _build_model(model_args, tokenizer, training_args.seed)
    logger.info(
        f"{'Continuing' if model_args.model_name_or_path else 'New'} {model.config.cell_type} language model: "
        f"{model.num_parameters():,} parameters, vocabulary {model.config.vocab_size}; {data_args.batching} batching, "
        f"{len(train_dataset)} training rows of {rows}."
    )

    # 4. Train. From here on output_dir exists (Trainer creates it); every check on the input has passed.
    if data_args.overwrite and resume_from is None and output_dir.is_dir() and any(output_dir.iterdir()):
        with training_args.main_process_first(desc="clearing output_dir"):
            if training_args.process_index == 0:
                shutil.rmtree(output_dir)
    trainer_options = {}
    if data_args.batching == "stateful":
        trainer_class = StatefulLMTrainer
        if data_args.variable_bptt:
            trainer_options["block_size"] = data_args.block_size  # learning rates scaled by length / block_size
    else:
        trainer_class = LanguageModelingTrainer
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=default_data_collator,
        **trainer_options,
    )
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(train_result.metrics)
    metrics["train_samples"] = len(train_dataset)
    metrics["train_steps"] = trainer.state.global_step
    if trainer.weight_average is not None and trainer.weight_average.start_step is not None:
        metrics["nt_asgd_start_step"] = trainer.weight_average.start_step
    eval_metrics = trainer.evaluate()  # with NT-ASGD, of the averaged parameters the model now holds
    metrics.update(eval_metrics)
    metrics["eval_samples"] = len(eval_dataset)
    if test_dataset is not None:
        metrics.update(trainer.evaluate(eval_dataset=test_dataset, metric_key_prefix="test"))
        metrics["test_samples"] = len(test_dataset)

    # 5. Save: everything into a staging folder next to output_dir, then moved in (see `_publish`)
    model.config.use_cache = True  # Trainer turned it off for training; generation and pipelines want the state
    model.generation_config = default_generation_config(tokenizer)
    staging = output_dir.with_name(f".{output_dir.name}.staging")
    if trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)  # left by a run that died while saving
    trainer.accelerator.wait_for_everyone()
    # every process takes part (sharded models); the main one writes. `_internal_call`: no push of Trainer's own
    # card here; with --push_to_hub the finished folder, with this recipe's card, is pushed below.
    trainer.save_model(os.fspath(staging), _internal_call=True)
    if trainer.is_world_process_zero():
        drop_pickled_training_arguments(staging)
        with open(staging / ALL_RESULTS_NAME, "w", encoding="utf-8") as file:
            json.dump(metrics, file, indent=2, sort_keys=True)
        plot_loss_curve(
            trainer.state.log_history,
            staging / LOSS_CURVE_NAME,
            title=f"{output_dir.name}: {model.config.cell_type} language model",
            vocab_size=model.config.vocab_size,
        )
        hyperparameters = hyperparameters_from_training_arguments(training_args)
        hyperparameters.update(batching=data_args.batching, block_size=data_args.block_size)
        if data_args.variable_bptt:
            hyperparameters["variable_bptt"] = True
        if getattr(training_args, "nt_asgd", False):
            hyperparameters.update(nt_asgd=True, nt_asgd_nonmono=training_args.nt_asgd_nonmono)
        write_model_card(
            staging,
            model=trainer.accelerator.unwrap_model(trainer.model),
            task="causal-lm",
            metrics=metrics,
            hyperparameters=hyperparameters,
            dataset_name=data_args.dataset_name or _dataset_description(data_args),
            tokenizer=tokenizer,
            base_model=model_args.model_name_or_path,
            model_name=output_dir.name,
            dataset_description=(
                f"{len(train_dataset):,} training rows and {len(eval_dataset):,} validation rows of {rows} "
                f"({data_args.batching} batching)."
            ),
        )
        _publish(staging, output_dir)
        logger.info(f"Saved the model, tokenizer, results and model card to {output_dir}")
        if training_args.push_to_hub:
            pushed = push_training_output(output_dir, training_args)
            logger.info(f"Pushed {output_dir} to {pushed.repo_id}: {pushed.commit_url}")
    trainer.accelerator.wait_for_everyone()
    return metrics


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """`argv` (default: `sys.argv[1:]`) as `--name value` options, or one `.json` file holding them."""
    return parse_dataclass_arguments(
        (ModelArguments, DataArguments, LanguageModelingTrainingArguments),
        argv,
        description="Train an hf_rnn recurrent language model with Trainer (see hf_rnn.language_modeling).",
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (`hf-rnn train-lm`, `training/train_causal_lm.py`): parse, train, print the validation
    loss and perplexity. Returns the exit status (0). Bad input raises `ValueError`; `--help` exits via SystemExit."""
    model_args, data_args, training_args = parse_arguments(argv)
    # info lines on the main process only: the other processes would repeat them
    with command_logging(python_logging.INFO if training_args.process_index == 0 else python_logging.WARNING):
        tune_glibc_malloc()
        metrics = run_language_modeling(model_args, data_args, training_args)
    if training_args.process_index == 0:
        print(f"validation loss {metrics['eval_loss']:.4f} nats/token, perplexity {metrics['eval_perplexity']:.2f}")
        if "test_loss" in metrics:
            print(f"test loss {metrics['test_loss']:.4f} nats/token, perplexity {metrics['test_perplexity']:.2f}")
        print(f"model saved to {Path(training_args.output_dir).absolute()}")
    return 0


__all__ = [
    "BATCHING_MODES",
    "CarriedState",
    "DataArguments",
    "LanguageModelingTrainer",
    "LanguageModelingTrainingArguments",
    "ModelArguments",
    "StatefulLMTrainer",
    "TimeBudgetCallback",
    "WeightAverage",
    "awd_weight_init",
    "build_block_dataset",
    "build_stateful_dataset",
    "concatenated_token_ids",
    "default_generation_config",
    "group_texts",
    "last_complete_checkpoint",
    "main",
    "model_config_options",
    "parse_arguments",
    "perplexity",
    "plot_loss_curve",
    "run_language_modeling",
    "should_start_averaging",
    "tbptt_state_file_name",
    "tokenize_documents",
    "variable_bptt_lengths",
]
