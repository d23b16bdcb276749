"""Model cards for hf_rnn models: README.md generated from a training run's real values.

```python
from hf_rnn.model_card import hyperparameters_from_training_arguments, write_model_card

card = write_model_card(
    "outputs/sentiment",                      # writes outputs/sentiment/README.md
    model=model,                              # the trained hf_rnn model: its config fills the architecture table
    task="sequence-classification",           # or "causal-lm", "token-classification"
    metrics=all_results,                      # e.g. {"eval_accuracy": 0.91, "eval_macro_f1": 0.90, "test_accuracy": ...}
    hyperparameters=hyperparameters_from_training_arguments(training_args),
    dataset_name="imdb",                      # a Hub dataset id (goes into the YAML) or a description
    tokenizer=tokenizer,
    base_model="outputs/lm",                  # the checkpoint fine-tuned from (ULMFiT), if any
)
```

The card is rendered with huggingface_hub's `ModelCard.from_template` from one of three Jinja templates, one per
task, whose layout (sections, tables, code snippets) lives in the template and whose facts come from this module:

| task | template | `pipeline_tag` |
|---|---|---|
| `causal-lm` | `causal_lm.md` | `text-generation` |
| `sequence-classification` | `sequence_classification.md` | `text-classification` |
| `token-classification` | `token_classification.md` | `token-classification` |

Where the templates live: the canonical copies are in the repository's top-level `model_cards/` folder. The wheel
ships that same folder as package data at `hf_rnn/model_cards/` (pyproject maps the package `hf_rnn.model_cards` to
the top-level folder with `[tool.setuptools.package-dir]`, so there is one copy in the source tree and no symlink).
`template_directory()` looks first next to this module (`hf_rnn/model_cards/`, a wheel install), then in
`model_cards/` beside the package folder (a source checkout or an editable install).

Metrics: `metrics` is a flat mapping as `Trainer` returns it. The prefix of a key names its split (`eval_` ->
validation, `test_` -> test, `train_` -> train; a key without a prefix has no split); bookkeeping entries (`epoch`,
`*_runtime`, `*_samples_per_second`, `*_steps_per_second`, `total_flos`) are left out. Every other finite number of
the validation and test splits (and those without a split) goes into the YAML `model-index` as an `EvalResult`,
except counts (`*_samples`, `*_tokens`); all of them, training metrics and counts included, go into the card's
evaluation table.
"""

import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.utils import logging


logger = logging.get_logger(__name__)

# Task -> (template file, pipeline tag, expected class-name suffix of the model, model-index task name)
TASKS = {
    "causal-lm": ("causal_lm.md", "text-generation", "ForCausalLM", "Text Generation"),
    "sequence-classification": (
        "sequence_classification.md",
        "text-classification",
        "ForSequenceClassification",
        "Text Classification",
    ),
    "token-classification": (
        "token_classification.md",
        "token-classification",
        "ForTokenClassification",
        "Token Classification",
    ),
}
# The pipeline tags are accepted as task names too.
_TASK_ALIASES = {"text-generation": "causal-lm", "text-classification": "sequence-classification"}

CELL_DESCRIPTIONS = {
    "lstm": "LSTM (Hochreiter & Schmidhuber 1997)",
    "gru": "GRU (Cho et al. 2014)",
    "rnn_tanh": "Elman RNN, tanh",
    "rnn_relu": "Elman RNN, ReLU",
}
CELL_TAGS = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "elman-rnn", "rnn_relu": "elman-rnn"}

SPLIT_PREFIXES = {"eval_": "validation", "test_": "test", "predict_": "test", "train_": "train"}
_SPLIT_ORDER = {"validation": 0, "test": 1, None: 2, "train": 3}
_BOOKKEEPING_SUFFIXES = ("runtime", "samples_per_second", "steps_per_second", "total_flos", "epoch")

# Counts (after the split prefix) shown in the evaluation table but not reported as results in the model-index.
COUNT_METRICS = {"samples": "examples", "tokens": "tokens"}

# Metric name (after the split prefix) -> (model-index metric type, display name, metric args)
KNOWN_METRICS = {
    "loss": ("loss", "Loss", None),
    "perplexity": ("perplexity", "Perplexity", None),
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "f1": ("f1", "F1", None),
    "precision": ("precision", "Precision", None),
    "recall": ("recall", "Recall", None),
}

# TrainingArguments fields a reader needs to reproduce a run, in the order they are shown.
TRAINING_ARGUMENT_FIELDS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "seed",
    "bf16",
    "fp16",
)

# A Hub id: "name" or "owner/name" of letters, digits, "-", "_", ".".
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# ---------------------------------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------------------------------


def template_directory() -> Path:
    """The folder holding the card templates: `hf_rnn/model_cards/` (wheel) or `model_cards/` beside the package
    (source checkout, editable install)."""
    package_folder = Path(__file__).resolve().parent
    for candidate in (package_folder / "model_cards", package_folder.parent / "model_cards"):
        if (candidate / "causal_lm.md").is_file():
            return candidate
    raise FileNotFoundError(
        f"hf_rnn's model card templates were found neither in {package_folder / 'model_cards'} (installed package) "
        f"nor in {package_folder.parent / 'model_cards'} (source checkout); reinstall hf_rnn."
    )


def _normalize_task(task: str) -> str:
    name = str(task).strip().lower().replace("_", "-")
    name = _TASK_ALIASES.get(name, name)
    if name not in TASKS:
        raise ValueError(
            f"`task` must be one of {list(TASKS)} (or a pipeline tag {list(_TASK_ALIASES)}), got {task!r}."
        )
    return name


# ---------------------------------------------------------------------------------------------------------------------
# Facts from the model, tokenizer, metrics and hyperparameters
# ---------------------------------------------------------------------------------------------------------------------


def _is_hub_id(name: str | None) -> bool:
    """A string that can name a Hub repository and is not a local path."""
    return bool(name) and _HUB_ID.match(name) is not None and not os.path.exists(name)


def _format_value(value: Any, measured: bool = False) -> str:
    """A value for a markdown table cell; a `measured` float (a metric) is rounded to 4 decimals."""
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
    elif isinstance(value, numbers.Real):
        value = float(value)
        if not measured:
            text = repr(value)  # a setting as it was given: 0.001, 5e-05
        elif math.isfinite(value) and (value == 0 or 1e-3 <= abs(value) < 1e6):
            text = f"{value:.4f}"
        else:
            text = f"{value:.4g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _architecture_rows(model, task: str) -> list[tuple[str, str]]:
    config = model.config
    directions = "2 (bidirectional)" if config.bidirectional else "1"
    parameters = model.num_parameters()  # shared (tied) weights counted once
    rows = [
        ("model class", f"`{type(model).__name__}`"),
        ("cell type", f"`{config.cell_type}`: {CELL_DESCRIPTIONS.get(config.cell_type, config.cell_type)}"),
        ("recurrent layers", config.num_hidden_layers),
        ("embedding size", config.embedding_size),
        ("hidden size (per direction)", config.hidden_size),
        ("directions", directions),
        ("vocabulary size", config.vocab_size),
        ("parameters", f"{parameters:,}"),
        (
            "tied input/output embeddings",
            bool(config.tie_word_embeddings) if task == "causal-lm" else "n/a (no LM head)",
        ),
        (
            "dropout (embedding / between layers / before the head)",
            f"{config.embedding_dropout} / {config.hidden_dropout} / {config.output_dropout}",
        ),
    ]
    if task == "sequence-classification":
        rows.append(("pooling", f"`{config.classifier_pooling}`"))
    if task != "causal-lm":
        rows.append(("labels", config.num_labels))
    return [(name, _format_value(value) if not isinstance(value, str) else value) for name, value in rows]


def _label_rows(model) -> list[tuple[int, str]]:
    id2label = model.config.id2label or {}
    return [(int(i), _format_value(label)) for i, label in sorted(id2label.items(), key=lambda item: int(item[0]))]


def _tokenizer_description(tokenizer) -> str | None:
    if tokenizer is None:
        return None
    kind = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        kind = type(backend.model).__name__  # BPE, WordPiece, Unigram, WordLevel
    specials = ", ".join(
        f"{name} `{token}` (id {tokenizer.convert_tokens_to_ids(token)})"
        for name in ("pad_token", "bos_token", "eos_token", "unk_token")
        if (token := getattr(tokenizer, name, None)) is not None
    )
    text = f"`{type(tokenizer).__name__}`" + (f" ({kind} model)" if kind else "") + f", {len(tokenizer):,} tokens"
    return text + (f"; special tokens: {specials}" if specials else "")


def _split_metric_name(key: str) -> tuple[str | None, str]:
    for prefix, split in SPLIT_PREFIXES.items():
        if key.startswith(prefix):
            return split, key[len(prefix) :]
    return None, key


def _metric_entries(metrics: Mapping[str, Any]) -> list[tuple[str | None, str, int | float]]:
    """(split, metric name, value) of every numeric, non-bookkeeping metric, validation first, then test, then the
    split-less ones, then train; in the given order within a split."""
    if not isinstance(metrics, Mapping):
        raise ValueError(f"`metrics` must be a mapping of metric name to number, got {type(metrics).__name__}.")
    entries = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        split, name = _split_metric_name(str(key))
        if name.endswith(_BOOKKEEPING_SUFFIXES):
            continue
        entries.append((split, name, int(value) if isinstance(value, numbers.Integral) else float(value)))
    return sorted(entries, key=lambda entry: _SPLIT_ORDER[entry[0]])  # stable: keeps the order within a split


def _metric_display_name(name: str) -> str:
    if name in COUNT_METRICS:
        return COUNT_METRICS[name]
    return KNOWN_METRICS[name][1] if name in KNOWN_METRICS else name.replace("_", " ")


def _eval_results(entries, task: str, dataset_id: str, dataset_display_name: str) -> list[EvalResult]:
    _, _, _, task_name = TASKS[task]
    results = []
    for split, name, value in entries:
        # A training loss is no evaluation result, a count is no metric, and the Hub's YAML takes no NaN or infinity.
        if split == "train" or name in COUNT_METRICS or not math.isfinite(value):
            continue
        metric_type, display_name, metric_args = KNOWN_METRICS.get(name, (name, _metric_display_name(name), None))
        results.append(
            EvalResult(
                task_type=TASKS[task][1],
                task_name=task_name,
                dataset_type=dataset_id,
                dataset_name=dataset_display_name,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=display_name,
                metric_value=round(float(value), 6),
                metric_args=metric_args,
            )
        )
    return results


def hyperparameters_from_training_arguments(training_arguments) -> dict[str, Any]:
    """The fields of a `TrainingArguments` that describe a run (learning rate, batch sizes, schedule, ...), plus the
    number of processes and the total train batch size (per device x accumulation x processes)."""
    hyperparameters = {name: getattr(training_arguments, name) for name in TRAINING_ARGUMENT_FIELDS}
    hyperparameters = {
        name: (value.value if hasattr(value, "value") else value)  # enums (scheduler, optimizer) as their string
        for name, value in hyperparameters.items()
        if value is not None
    }
    if hyperparameters.get("max_steps", -1) <= 0:
        hyperparameters.pop("max_steps", None)  # -1: the number of epochs decides
    world_size = getattr(training_arguments, "world_size", 1)
    hyperparameters["number_of_processes"] = world_size
    hyperparameters["total_train_batch_size"] = (
        training_arguments.per_device_train_batch_size * training_arguments.gradient_accumulation_steps * world_size
    )
    return hyperparameters


# ---------------------------------------------------------------------------------------------------------------------
# Card
# ---------------------------------------------------------------------------------------------------------------------


def build_model_card(
    *,
    model,
    task: str,
    metrics: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    dataset_name: str | None = None,
    tokenizer=None,
    base_model: str | None = None,
    model_name: str = "hf_rnn-model",
    repo_id: str | None = None,
    dataset_description: str | None = None,
    license: str = "apache-2.0",
    language: str | list[str] | None = None,
) -> ModelCard:
    """Render the card in memory (`write_model_card` also saves it); arguments as in `write_model_card`."""
    task = _normalize_task(task)
    template_file, pipeline_tag, class_suffix, _ = TASKS[task]
    model = getattr(model, "module", model)  # the model inside a DistributedDataParallel wrapper
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "hf_rnn":
        raise ValueError(f"`model` must be an hf_rnn model (config.model_type 'hf_rnn'), got {type(model).__name__}.")
    if not type(model).__name__.endswith(class_suffix):
        raise ValueError(
            f"`task` {task!r} describes a model whose class ends in {class_suffix!r}, but `model` is a "
            f"{type(model).__name__}."
        )
    if not isinstance(hyperparameters, Mapping):
        raise ValueError(
            "`hyperparameters` must be a mapping of name to value (see `hyperparameters_from_training_arguments`), "
            f"got {type(hyperparameters).__name__}."
        )
    repo_id = repo_id or model_name

    # Only Hub ids go into the YAML (`datasets`, `base_model`, the model-index dataset type): the Hub validates them.
    dataset_id = dataset_name if _is_hub_id(dataset_name) else None
    base_model_id = base_model if _is_hub_id(base_model) else None
    entries = _metric_entries(metrics)
    eval_results = _eval_results(entries, task, dataset_id or "custom", dataset_name or "custom data")
    tags = ["hf_rnn", "rnn", CELL_TAGS.get(config.cell_type, config.cell_type), "recurrent"]
    if config.bidirectional:
        tags.append("bidirectional")
    if base_model is not None and task != "causal-lm":
        tags.append("ulmfit")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        language=language,
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model_id,
        model_name=model_name,
        eval_results=eval_results or None,
    )

    import torch
    import transformers

    from . import __version__

    card = ModelCard.from_template(
        card_data,
        template_path=str(template_directory() / template_file),
        model_name=model_name,
        repo_id=repo_id,
        model_class=type(model).__name__,
        cell_type=config.cell_type,
        cell_description=CELL_DESCRIPTIONS.get(config.cell_type, config.cell_type),
        num_hidden_layers=config.num_hidden_layers,
        bidirectional=bool(config.bidirectional),
        architecture_rows=_architecture_rows(model, task),
        label_rows=_label_rows(model) if task != "causal-lm" else [],
        tokenizer_description=_tokenizer_description(tokenizer),
        dataset_name=dataset_name,
        dataset_is_on_hub=dataset_id is not None,
        dataset_description=dataset_description,
        base_model_name=base_model,
        hyperparameter_rows=[(str(name), _format_value(value)) for name, value in hyperparameters.items()],
        metric_rows=[
            (split or "-", _metric_display_name(name), _format_value(value, measured=True))
            for split, name, value in entries
        ],
        versions=f"hf_rnn {__version__}, transformers {transformers.__version__}, torch {torch.__version__}",
    )
    # Optional template blocks leave runs of blank lines behind: collapse them (no code block holds one).
    return ModelCard(re.sub(r"\n{3,}", "\n\n", str(card)))


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    model,
    task: str,
    metrics: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    dataset_name: str | None = None,
    tokenizer=None,
    base_model: str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    dataset_description: str | None = None,
    license: str = "apache-2.0",
    language: str | list[str] | None = None,
) -> ModelCard:
    """Render the model card of a trained hf_rnn model and save it as `output_dir/README.md`.

    Args:
        output_dir (`str` or `os.PathLike`): the model folder (created if missing); its name is the default model name.
        model: the trained hf_rnn model; its config fills the architecture table (cell type, layers, sizes,
            directions, parameter count, tied embeddings, vocabulary, labels).
        task (`str`): "causal-lm", "sequence-classification" or "token-classification" (the pipeline tags
            "text-generation", "text-classification" are accepted too). Must match the model's head.
        metrics (`Mapping[str, float]`): the measured results, keys as Trainer writes them (`eval_loss`,
            `eval_perplexity`, `eval_accuracy`, `test_macro_f1`, `train_loss`, ...). Validation and test metrics go
            into the YAML `model-index`; all go into the evaluation table.
        hyperparameters (`Mapping[str, Any]`): what the run was trained with, shown as a table (for example
            `hyperparameters_from_training_arguments(training_args)` plus the recipe's own options).
        dataset_name (`str`, *optional*): the training data: a Hub dataset id (then also listed in the YAML
            `datasets`) or a description of local data.
        tokenizer (*optional*): the tokenizer saved with the model, described in the card.
        base_model (`str`, *optional*): the checkpoint the model was initialised from (a Hub id goes into the YAML
            `base_model`; a local path is only mentioned).
        model_name (`str`, *optional*): title of the card and name in the `model-index`; default: the folder name.
        repo_id (`str`, *optional*): the name used in the loading snippets; default: `model_name`.
        dataset_description (`str`, *optional*): more about the data (sizes, columns), from the recipe.
        license (`str`, defaults to "apache-2.0"), language (*optional*): YAML metadata.

    Returns:
        `huggingface_hub.ModelCard`: the card that was written.

    Raises:
        ValueError: for an unknown `task`, a model that is not an hf_rnn model or does not match `task`, or
            `metrics`/`hyperparameters` that are not mappings.
    """
    output_dir = Path(output_dir)
    card = build_model_card(
        model=model,
        task=task,
        metrics=metrics,
        hyperparameters=hyperparameters,
        dataset_name=dataset_name,
        tokenizer=tokenizer,
        base_model=base_model,
        model_name=model_name or output_dir.resolve().name,
        repo_id=repo_id,
        dataset_description=dataset_description,
        license=license,
        language=language,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    card.save(output_dir / "README.md")
    logger.info(f"Wrote the model card to {output_dir / 'README.md'}")
    return card


__all__ = [
    "TASKS",
    "build_model_card",
    "hyperparameters_from_training_arguments",
    "template_directory",
    "write_model_card",
]
