"""Train a text classifier (`RNNForSequenceClassification`) with `Trainer`: from scratch, or from an hf_rnn language
model checkpoint (the ULMFiT recipe: pretrain a language model, then fine-tune it as a classifier).

`hf-rnn train-classifier` and `python training/train_classifier.py` run `main`; its options are the fields of
`ModelArguments`, `DataArguments` and `ClassifierTrainingArguments` (transformers' `TrainingArguments`: every Trainer
option works), or one JSON file holding them.

```bash
# from scratch: a WordPiece tokenizer is trained on the training texts, a bidirectional LSTM on the labels
hf-rnn train-classifier --train_file train.csv --validation_file dev.csv --test_file test.csv \\
    --text_column review --label_column sentiment --bidirectional --output_dir outputs/sentiment
# ULMFiT: the language model's tokenizer, embedding and recurrent layers; a new classification head
hf-rnn train-classifier --model_name_or_path outputs/lm --train_file train.json --output_dir outputs/sentiment-ulmfit
hf-rnn train-classifier arguments.json        # the same options as one JSON object
```

What it does, in order; every check on the input runs before any training, and a failed run leaves no output folder:

1. Load the data: a Hub dataset (`dataset_name`: its "train", "validation" and "test" splits when present) or local
   CSV / TSV / JSON / JSON-lines files (`train_file`, `validation_file`, `test_file`). The text and label columns
   must exist (the error lists the available ones); rows whose text is missing or blank are dropped.
2. Labels: strings or integers (any values). Their ids are the training set's distinct labels in sorted order
   (numbers numerically), so the same data always gives the same ids; a dataset whose label column is a `ClassLabel`
   keeps its own ids and names. `id2label`/`label2id` go into the config, so pipelines print label names. A
   validation or test label absent from the training set is an error; a split with no labels at all (a Hub test
   split holding -1 everywhere) is not evaluated.
3. Tokenizer: `tokenizer_name_or_path`, else the one saved with `model_name_or_path`, else a new one trained on the
   training texts with `hf_rnn.tokenization.train_tokenizer` (`tokenizer_kind`, default "wordpiece": whole words
   for frequent words and word pieces for rare ones, so no text is unknown beyond unseen characters).
4. Model: from scratch (`RNNConfig` from the architecture options, `vocab_size` = the tokenizer's) or from
   `model_name_or_path` (its architecture; dropouts and `classifier_pooling` may be changed; the tokenizer must fit
   its vocabulary).
5. Tokenise with `datasets.map` (batched, cached), pad each batch to its longest text (`DataCollatorWithPadding`),
   train, evaluate on the validation and test splits (accuracy and macro-F1, computed with numpy), and save the
   model (safetensors), the tokenizer, `all_results.json`, the trainer state and a model card (README.md) to
   `output_dir`.

Output folder: Trainer works in a staging folder `.{name}.tmp-*` next to `output_dir` (checkpoints and logs land
there), which is renamed to `output_dir` once everything is saved; on any error it is deleted. A crashed run therefore
keeps no checkpoint: resume only from checkpoints of a finished run (`--resume_from_checkpoint PATH`).
"""

import math
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy
import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.utils import logging

from .configuration_rnn import CELL_TYPES, POOLING_MODES, RNNConfig
from .data import FILE_FORMATS
from .file_utils import check_output_dir, drop_pickled_training_arguments, replace_with
from .command_utils import command_logging, parse_dataclass_arguments, tune_glibc_malloc
from .hub import push_training_output
from .model_card import hyperparameters_from_training_arguments, write_model_card
from .modeling_rnn import RNNForSequenceClassification
from .tokenization import TOKENIZER_KINDS, train_tokenizer
from .validation import check_tokenizer_fits


logger = logging.get_logger(__name__)

# Architecture of a model trained from scratch, when the option is not given. A checkpoint brings its own.
DEFAULT_ARCHITECTURE = {
    "cell_type": "lstm",
    "embedding_size": 128,
    "hidden_size": 128,
    "num_hidden_layers": 1,
    "bidirectional": False,
}
# Options that may differ from the checkpoint's config when fine-tuning (they change no weight's shape).
FINE_TUNING_OVERRIDES = ("classifier_pooling", "embedding_dropout", "hidden_dropout", "output_dropout")
LABELED_FILE_FORMATS = {extension: value for extension, value in FILE_FORMATS.items() if extension != ".txt"}
SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    """The model and the tokenizer: a new model (architecture options) or an hf_rnn checkpoint to start from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "hf_rnn checkpoint (folder or Hub id) to initialise from, usually a language model (ULMFiT): its "
            "embedding and recurrent layers are reused, the classification head is new. Default: a new model."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer to use. Default: the one saved with --model_name_or_path, else one trained on the "
            "training texts (--tokenizer_kind, --tokenizer_vocab_size)."
        },
    )
    cell_type: str | None = field(
        default=None, metadata={"help": f"One of {', '.join(CELL_TYPES)} (new model; default lstm)."}
    )
    embedding_size: int | None = field(default=None, metadata={"help": "Embedding width (new model; default 128)."})
    hidden_size: int | None = field(
        default=None, metadata={"help": "Recurrent state width per direction (new model; default 128)."}
    )
    num_hidden_layers: int | None = field(
        default=None, metadata={"help": "Number of stacked recurrent layers (new model; default 1)."}
    )
    # A plain flag (HfArgumentParser has no optional booleans): False means "not asked for", so a checkpoint keeps its own.
    bidirectional: bool = field(
        default=False, metadata={"help": "Read the text in both directions (new model; a checkpoint keeps its own)."}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "Embedding rows (new model; default: the tokenizer's size, its minimum)."}
    )
    classifier_pooling: str | None = field(
        default=None,
        metadata={
            "help": f"How a text becomes one vector: {', '.join(POOLING_MODES)} (default: checkpoint's, or last)."
        },
    )
    embedding_dropout: float | None = field(default=None, metadata={"help": "Dropout on the embeddings (default 0)."})
    hidden_dropout: float | None = field(default=None, metadata={"help": "Dropout between layers (default 0)."})
    output_dropout: float | None = field(default=None, metadata={"help": "Dropout before the head (default 0)."})
    tokenizer_kind: str = field(
        default="wordpiece",
        metadata={"help": f"Kind of tokenizer trained when none is given: {', '.join(TOKENIZER_KINDS)}."},
    )
    tokenizer_vocab_size: int = field(
        default=8000, metadata={"help": "Vocabulary size of that tokenizer (an upper bound on little text)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a tokenizer from the Hub to run its own code."}
    )


@dataclass
class DataArguments:
    """Where the texts and labels come from: a Hub dataset or local CSV/TSV/JSON files."""

    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id or local dataset folder (its train/validation/test splits)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_file: str | None = field(default=None, metadata={"help": "Training data: .csv, .tsv, .json or .jsonl."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test data, same formats."})
    text_column: str = field(default="text", metadata={"help": "Column holding the texts."})
    label_column: str = field(default="label", metadata={"help": "Column holding the labels (strings or integers)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N examples only (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N validation and test examples only."}
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (default: no truncation)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where `datasets` keeps its cache (default: HF_DATASETS_CACHE)."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace an existing output_dir that holds a saved model."}
    )


@dataclass
class ClassifierTrainingArguments(TrainingArguments):
    """transformers' `TrainingArguments` with a learning rate suited to recurrent networks trained with Adam."""

    learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "Initial learning rate (AdamW). 1e-3 suits recurrent networks (transformers' default 5e-5 "
            "is for fine-tuning large pretrained transformers)."
        },
    )


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def accuracy_and_macro_f1(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-averaged F1 of predicted class ids against the true ones, with numpy.

    Macro-F1 is the unweighted mean of the per-label F1 = 2·TP / (2·TP + FP + FN) over the labels that occur in the
    references or the predictions (as scikit-learn's `f1_score(average="macro")` does by default).
    """
    predictions = numpy.asarray(predictions).reshape(-1)
    references = numpy.asarray(references).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(
            f"`predictions` and `references` must have the same length, got {predictions.size} and {references.size}."
        )
    if references.size == 0:
        raise ValueError("`references` is empty: accuracy and F1 need at least one example.")
    f1_scores = []
    for label in numpy.union1d(predictions, references):
        true_positives = numpy.sum((predictions == label) & (references == label))
        false_positives = numpy.sum((predictions == label) & (references != label))
        false_negatives = numpy.sum((predictions != label) & (references == label))
        f1_scores.append(2 * true_positives / (2 * true_positives + false_positives + false_negatives))
    return {"accuracy": float(numpy.mean(predictions == references)), "macro_f1": float(numpy.mean(f1_scores))}


def compute_metrics(evaluation: EvalPrediction) -> dict[str, float]:
    """Trainer's `compute_metrics`: logits [N, num_labels] and label ids [N] -> accuracy and macro-F1."""
    logits = evaluation.predictions[0] if isinstance(evaluation.predictions, tuple) else evaluation.predictions
    return accuracy_and_macro_f1(numpy.argmax(logits, axis=-1), evaluation.label_ids)


# ---------------------------------------------------------------------------------------------------------------------
# Data and labels
# ---------------------------------------------------------------------------------------------------------------------


def _load_file(path: str, argument: str, cache_dir: str | None) -> datasets.Dataset:
    if not os.path.isfile(path):
        raise ValueError(f"`{argument}`: the file {path!r} does not exist (or is not a file).")
    if os.path.getsize(path) == 0:
        raise ValueError(f"`{argument}`: the file {path!r} is empty.")
    extension = Path(path).suffix.lower()
    if extension not in LABELED_FILE_FORMATS:
        raise ValueError(
            f"`{argument}`: cannot read {path!r}: unknown extension {extension!r}; supported: "
            f"{', '.join(LABELED_FILE_FORMATS)} (.tsv is tab-separated CSV; .json holds JSON lines or one document)."
        )
    builder, builder_arguments = LABELED_FILE_FORMATS[extension]
    try:
        return datasets.load_dataset(builder, data_files=path, split="train", cache_dir=cache_dir, **builder_arguments)
    except Exception as error:  # the builders' own errors (pandas, pyarrow) say little about which file is wrong
        raise ValueError(f"`{argument}`: cannot read {path!r} as {builder}: {error}") from error


def load_classification_splits(data_args: DataArguments) -> dict[str, datasets.Dataset]:
    """The "train" split and, when the source has them, "validation" and "test", with their columns checked."""
    files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
    if data_args.dataset_name is not None:
        if any(files.values()):
            raise ValueError(
                "Give either `dataset_name` (a Hub dataset) or `train_file`/`validation_file`/"
                "`test_file` (local files), not both."
            )
        loaded = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config, cache_dir=data_args.cache_dir)
        if "train" not in loaded:
            raise ValueError(f"Dataset {data_args.dataset_name!r} has no 'train' split; it has: {list(loaded)}.")
        splits = {name: loaded[name] for name in SPLITS if name in loaded}
        sources = {name: f"split {name!r} of {data_args.dataset_name!r}" for name in splits}
    else:
        if data_args.dataset_config is not None:
            raise ValueError(f"`dataset_config` {data_args.dataset_config!r} needs `dataset_name`.")
        if files["train"] is None:
            raise ValueError("Give the training data: `train_file` (a .csv/.tsv/.json file) or `dataset_name`.")
        missing = [f"{name}_file {path!r}" for name, path in files.items() if path and not os.path.isfile(path)]
        if missing:
            raise ValueError(f"These files do not exist (or are not files): {', '.join(missing)}.")
        splits = {name: _load_file(path, f"{name}_file", data_args.cache_dir) for name, path in files.items() if path}
        sources = {name: f"{name}_file {files[name]!r}" for name in splits}

    for name, dataset in splits.items():
        for argument in ("text_column", "label_column"):
            column = getattr(data_args, argument)
            if column not in dataset.column_names:
                raise ValueError(
                    f"`{argument}` {column!r} is not a column of {sources[name]}; available columns: "
                    f"{dataset.column_names}."
                )
        feature = dataset.features[data_args.text_column]
        if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
            raise ValueError(
                f"`text_column` {data_args.text_column!r} of {sources[name]} holds {feature}, not strings; choose "
                f"the text column among {dataset.column_names}."
            )
        kept = dataset.filter(
            lambda texts: [isinstance(text, str) and not text.isspace() and text != "" for text in texts],
            input_columns=data_args.text_column,
            batched=True,
            desc=f"Dropping blank texts ({name})",
        )
        if len(kept) < len(dataset):
            logger.warning(
                f"Dropped {len(dataset) - len(kept)} rows with a missing or blank text from {sources[name]}."
            )
        if len(kept) == 0:
            raise ValueError(f"{sources[name]} holds no text (no rows, or only blank texts).")
        splits[name] = kept

    if data_args.max_train_samples is not None:
        splits["train"] = splits["train"].select(range(min(data_args.max_train_samples, len(splits["train"]))))
    if data_args.max_eval_samples is not None:
        for name in ("validation", "test"):
            if name in splits:
                splits[name] = splits[name].select(range(min(data_args.max_eval_samples, len(splits[name]))))
    return splits


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def _label_key(label: Any) -> str:
    """The name of a label value: its text, the same whatever type a file format gave it (1, 1.0 from CSV, "1")."""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label)


@dataclass
class LabelMap:
    """Label names by id, and how a split's raw label values become ids."""

    id2label: dict[int, str]
    class_label: bool  # the dataset's ClassLabel ids are used as they are

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}

    def to_ids(self, labels: list) -> list[int]:
        if self.class_label:
            return [int(label) for label in labels]
        label2id = self.label2id
        return [label2id[_label_key(label)] for label in labels]


def build_label_map(
    splits: dict[str, datasets.Dataset], label_column: str
) -> tuple[LabelMap, dict[str, datasets.Dataset]]:
    """Label ids from the training split, checked against the other splits. Returns the map and the splits to
    evaluate on (a split without any label is dropped, with a warning)."""
    train_feature = splits["train"].features[label_column]
    if isinstance(train_feature, datasets.ClassLabel):
        label_map = LabelMap(id2label=dict(enumerate(train_feature.names)), class_label=True)
        known = set(range(train_feature.num_classes))
        train_values = splits["train"][label_column]
        if any(value not in known for value in train_values):
            raise ValueError(
                f"`label_column` {label_column!r} of the training data holds ids outside its ClassLabel "
                f"names {train_feature.names} (-1 marks an unlabelled example)."
            )
    else:
        if isinstance(train_feature, datasets.Sequence) or not isinstance(train_feature, datasets.Value):
            raise ValueError(
                f"`label_column` {label_column!r} holds {train_feature}; expected one string or integer label per text."
            )
        train_values = splits["train"][label_column]
        missing = sum(_is_missing(value) for value in train_values)
        if missing:
            raise ValueError(
                f"`label_column` {label_column!r}: {missing} training examples have no label; label "
                "every example or remove them."
            )
        keys = {}
        for value in train_values:
            keys.setdefault(_label_key(value), value)
        ordered = sorted(keys, key=lambda key: (keys[key], key)) if _sortable(keys.values()) else sorted(keys)
        label_map = LabelMap(id2label=dict(enumerate(ordered)), class_label=False)
        known = set(keys)
    if len(label_map.id2label) < 2:
        raise ValueError(
            f"`label_column` {label_column!r}: the training data has only the label(s) "
            f"{list(label_map.id2label.values())}; a classifier needs at least 2."
        )

    evaluation_splits = {}
    for name in ("validation", "test"):
        if name not in splits:
            continue
        values = splits[name][label_column]
        unlabelled = [value for value in values if _is_missing(value) or (label_map.class_label and value == -1)]
        if len(unlabelled) == len(values):
            logger.warning(f"The {name} split has no labels (only missing values or -1): it is not evaluated.")
            continue
        if unlabelled:
            raise ValueError(
                f"`label_column` {label_column!r}: {len(unlabelled)} of the {len(values)} {name} examples have no "
                "label; label every example or remove them."
            )
        if label_map.class_label:
            outside = sorted({value for value in values if value not in known})
        else:
            outside = sorted({_label_key(value) for value in values} - known)
        if outside:
            raise ValueError(
                f"`label_column` {label_column!r}: the {name} data has labels that the training data lacks: "
                f"{outside[:10]}{' ...' if len(outside) > 10 else ''}; the model knows only "
                f"{list(label_map.id2label.values())}. Add examples of them to the training data or remove them."
            )
        evaluation_splits[name] = splits[name]
    return label_map, evaluation_splits


def _sortable(values) -> bool:
    """Whether the raw label values share one ordered type (numbers sort numerically: 2 before 10)."""
    values = list(values)
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values) or all(
        isinstance(value, str) for value in values
    )


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------------------------------------------------


def _check_model_arguments(model_args: ModelArguments) -> None:
    """Checks that need no data: run first, so that a doomed run fails at once."""
    if model_args.tokenizer_kind not in TOKENIZER_KINDS:
        raise ValueError(f"`tokenizer_kind` must be one of {list(TOKENIZER_KINDS)}, got {model_args.tokenizer_kind!r}.")
    options = _new_model_options(model_args)
    if model_args.model_name_or_path is None:
        RNNConfig(vocab_size=model_args.vocab_size or 10000, **options)  # raises ValueError for a bad choice or size
    else:
        for name in ("classifier_pooling", "embedding_dropout", "hidden_dropout", "output_dropout"):
            if name in options:
                RNNConfig(**{name: options[name]})
        if model_args.vocab_size is not None:
            raise ValueError("`vocab_size` comes from the checkpoint `model_name_or_path`; do not set it.")


def _new_model_options(model_args: ModelArguments) -> dict[str, Any]:
    options = {
        name: getattr(model_args, name)
        for name in (*DEFAULT_ARCHITECTURE, *FINE_TUNING_OVERRIDES)
        if getattr(model_args, name) not in (None, False)  # False: the `bidirectional` flag was not given
    }
    if model_args.model_name_or_path is None:
        options = {**DEFAULT_ARCHITECTURE, **options}
    return options


def load_or_train_tokenizer(
    model_args: ModelArguments, train_texts: Iterator[str] | list[str]
) -> PreTrainedTokenizerBase:
    """The tokenizer named by the arguments, or one trained on `train_texts`; always with a padding token."""
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if name is not None:
        argument = "tokenizer_name_or_path" if model_args.tokenizer_name_or_path else "model_name_or_path"
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"`{argument}` {name!r}: no tokenizer could be loaded from it ({' '.join(str(error).split())[:300]})"
                + ("; pass `tokenizer_name_or_path`." if argument == "model_name_or_path" else ".")
            ) from error
    else:
        tokenizer = train_tokenizer(
            train_texts, kind=model_args.tokenizer_kind, vocab_size=model_args.tokenizer_vocab_size
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"The tokenizer {name!r} has neither a padding token nor an end-of-sequence token to pad with; "
                "give a tokenizer with `pad_token` set."
            )
        logger.warning(f"The tokenizer has no padding token: padding with its eos token {tokenizer.eos_token!r}.")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(model_args: ModelArguments, tokenizer, label_map: LabelMap) -> RNNForSequenceClassification:
    """A new classifier, or one whose backbone comes from `model_args.model_name_or_path`; refuses a tokenizer whose
    ids do not fit the embedding."""
    options = _new_model_options(model_args)
    labels = {
        "id2label": dict(label_map.id2label),
        "label2id": label_map.label2id,
        "problem_type": "single_label_classification",
    }
    if model_args.model_name_or_path is None:
        vocab_size = model_args.vocab_size or len(tokenizer)
        if vocab_size < len(tokenizer):
            raise ValueError(
                f"`vocab_size`={vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens: every token id "
                f"needs an embedding row; use vocab_size >= {len(tokenizer)} or leave it unset."
            )
        config = RNNConfig(
            vocab_size=vocab_size,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **options,
            **labels,
        )
        return RNNForSequenceClassification(config)

    path = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`model_name_or_path` {path!r}: no model config could be loaded from it ({error})."
        ) from error
    if getattr(config, "model_type", None) != RNNConfig.model_type:
        raise ValueError(f"`model_name_or_path` {path!r} is a {config.model_type!r} model, not an hf_rnn model.")
    for name in DEFAULT_ARCHITECTURE:
        if name in options and options[name] != getattr(config, name):
            raise ValueError(
                f"`{name}`={options[name]!r} differs from the checkpoint {path!r}, which has {name}="
                f"{getattr(config, name)!r}: the architecture comes from the checkpoint; leave `{name}` unset."
            )
    check_tokenizer_fits(config, tokenizer, source=path)
    overrides = {name: options[name] for name in FINE_TUNING_OVERRIDES if name in options}
    model, loading_info = RNNForSequenceClassification.from_pretrained(
        path, output_loading_info=True, ignore_mismatched_sizes=True, **overrides, **labels
    )
    backbone_missing = [key for key in loading_info["missing_keys"] if not key.startswith("score.")]
    if backbone_missing:
        raise ValueError(
            f"`model_name_or_path` {path!r} lacks backbone weights {backbone_missing[:5]}: it is not a trained hf_rnn "
            "checkpoint."
        )
    logger.info(f"Initialised the embedding and recurrent layers from {path}; the classification head is new.")
    return model


# ---------------------------------------------------------------------------------------------------------------------
# Output folder
# ---------------------------------------------------------------------------------------------------------------------


def _shared_staging_dir(output_dir: Path) -> Path:
    """`.{name}.tmp-{token}` next to `output_dir`, the same token in every process of a distributed run."""
    token = uuid.uuid4().hex[:8]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shared = [token]
        torch.distributed.broadcast_object_list(shared, src=0)
        token = shared[0]
    return output_dir.with_name(f".{output_dir.name}.tmp-{token}")


@contextmanager
def _staged_output_dir(output_dir: Path, overwrite: bool, is_main_process: bool) -> Iterator[Path]:
    """Yield a staging folder; the main process renames it to `output_dir` when the block succeeds; it is deleted on
    any error (so no partial `output_dir` is ever left)."""
    staging = _shared_staging_dir(output_dir)
    try:
        yield staging
        if is_main_process:
            replace_with(staging, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------------------------


def _describe_data(
    data_args: DataArguments, splits: dict[str, datasets.Dataset], label_map: LabelMap
) -> tuple[str, str]:
    if data_args.dataset_name is not None and os.path.exists(data_args.dataset_name):
        name = f"the local dataset folder {Path(data_args.dataset_name).name}"
    elif data_args.dataset_name is not None:
        name = data_args.dataset_name  # a Hub id: the card links it and lists it in its metadata
    else:
        files = [getattr(data_args, f"{split}_file") for split in SPLITS if getattr(data_args, f"{split}_file")]
        name = "local files " + ", ".join(Path(file).name for file in files)
    sizes = ", ".join(f"{len(dataset):,} {split}" for split, dataset in splits.items())
    description = (
        f"Examples: {sizes}. Texts from column `{data_args.text_column}`, labels from column "
        f"`{data_args.label_column}` ({len(label_map.id2label)} labels)."
    )
    return name, description


def run_train_classifier(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Load, check, train, evaluate and save (see the module docstring). Returns the metrics of `all_results.json`.

    Raises `ValueError` for bad input, before any training and without creating `output_dir`.
    """
    # 1. Checks that need no data
    _check_model_arguments(model_args)
    output_dir = Path(training_args.output_dir).absolute()
    check_output_dir(output_dir, data_args.overwrite)
    for name in ("max_train_samples", "max_eval_samples", "max_seq_length"):
        value = getattr(data_args, name)
        if value is not None and value < 1:
            raise ValueError(f"`{name}` must be at least 1 when given, got {value}.")

    # 2. Data and labels
    splits = load_classification_splits(data_args)
    label_map, evaluation_splits = build_label_map(splits, data_args.label_column)
    if training_args.eval_strategy != "no" and "validation" not in evaluation_splits:
        raise ValueError(
            f"`eval_strategy`={training_args.eval_strategy.value!r} evaluates during training, but there is no "
            "labelled validation data: give `validation_file` (or a dataset with a validation split) or set "
            "`eval_strategy` to 'no'."
        )

    # 3. Tokenizer and model
    set_seed(training_args.seed)

    def train_texts() -> Iterator[str]:
        for batch in splits["train"].iter(batch_size=1000):
            yield from batch[data_args.text_column]

    tokenizer = load_or_train_tokenizer(model_args, train_texts())
    model = build_model(model_args, tokenizer, label_map)

    # 4. Tokenisation: ids and labels, every other column dropped
    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            batch[data_args.text_column],
            truncation=data_args.max_seq_length is not None,
            max_length=data_args.max_seq_length,
        )
        encoded["labels"] = label_map.to_ids(batch[data_args.label_column])
        return encoded

    encoded_splits = {}
    for name, dataset in {"train": splits["train"], **evaluation_splits}.items():
        encoded = dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc=f"Tokenizing ({name})")
        kept = encoded.filter(lambda ids: [len(row) > 0 for row in ids], input_columns="input_ids", batched=True)
        if len(kept) < len(encoded):
            logger.warning(f"Dropped {len(encoded) - len(kept)} {name} texts that tokenize to no token at all.")
        encoded_splits[name] = kept

    # 5. Train, evaluate, save. Trainer works in the staging folder; a Hub repo is named after output_dir, not it.
    if training_args.push_to_hub and training_args.hub_model_id is None:
        training_args.hub_model_id = output_dir.name
    with _staged_output_dir(output_dir, data_args.overwrite, training_args.process_index == 0) as staging:
        training_args.output_dir = str(staging)
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=encoded_splits["train"],
            eval_dataset=encoded_splits.get("validation"),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
            callbacks=callbacks,
        )
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        results = {**train_result.metrics, "train_samples": len(encoded_splits["train"])}
        for name, prefix in (("validation", "eval"), ("test", "test")):
            if name in encoded_splits:
                results.update(trainer.evaluate(eval_dataset=encoded_splits[name], metric_key_prefix=prefix))
                results[f"{prefix}_samples"] = len(encoded_splits[name])
        # safetensors weights, config (id2label, auto_map), modeling source, tokenizer. `_internal_call`: no push of
        # Trainer's own card here; with --push_to_hub the finished folder, with this recipe's card, is pushed below.
        trainer.save_model(staging, _internal_call=True)
        if trainer.is_world_process_zero():
            drop_pickled_training_arguments(staging)
            trainer.save_metrics("all", results, combined=False)  # all_results.json
            trainer.save_state()
            dataset_name, dataset_description = _describe_data(data_args, splits, label_map)
            hyperparameters = {
                **hyperparameters_from_training_arguments(training_args),
                "max_seq_length": data_args.max_seq_length,
                "tokenizer": model_args.tokenizer_name_or_path
                or model_args.model_name_or_path
                or f"{model_args.tokenizer_kind} trained on the training texts",
            }
            write_model_card(
                staging,
                model=trainer.accelerator.unwrap_model(trainer.model),
                task="sequence-classification",
                metrics=results,
                hyperparameters={key: value for key, value in hyperparameters.items() if value is not None},
                dataset_name=dataset_name,
                dataset_description=dataset_description,
                tokenizer=tokenizer,
                base_model=model_args.model_name_or_path,
                model_name=output_dir.name,
            )
    training_args.output_dir = str(output_dir)
    logger.info(f"Saved the classifier, its tokenizer, all_results.json and its model card to {output_dir}")
    if training_args.push_to_hub and training_args.process_index == 0:
        pushed = push_training_output(output_dir, training_args)
        logger.info(f"Pushed {output_dir} to {pushed.repo_id}: {pushed.commit_url}")
    return results


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, ClassifierTrainingArguments]:
    """`argv` as `--name value` options, or a single JSON file holding them all."""
    return parse_dataclass_arguments(
        (ModelArguments, DataArguments, ClassifierTrainingArguments),
        argv,
        description="Train an hf_rnn text classifier with Trainer (from scratch or from an hf_rnn language model).",
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse `argv` (default: `sys.argv[1:]`), train, evaluate, save. Returns 0.

    Bad input raises `ValueError` (the `hf-rnn` command prints it on one line and exits with status 2).
    """
    model_args, data_args, training_args = parse_arguments(argv)
    with command_logging():
        tune_glibc_malloc()
        results = run_train_classifier(model_args, data_args, training_args)
        for key in ("eval_accuracy", "eval_macro_f1", "test_accuracy", "test_macro_f1"):
            if key in results:
                logger.info(f"{key} = {results[key]:.4f}")
    return 0


__all__ = [
    "ClassifierTrainingArguments",
    "DataArguments",
    "LabelMap",
    "ModelArguments",
    "accuracy_and_macro_f1",
    "build_label_map",
    "build_model",
    "compute_metrics",
    "load_classification_splits",
    "load_or_train_tokenizer",
    "main",
    "parse_arguments",
    "run_train_classifier",
]
