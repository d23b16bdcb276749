"""Convert plain-PyTorch recurrent models (RNN, LSTM, GRU) into hf_rnn models with identical outputs.

Two source formats, told apart by their state-dict keys (or named with `format=`):

```
"tutorial": the tutorial classes SimpleRNN / RNNLM / RNNClassifier (batch-first)
    embedding.weight [V, E]                  -> model.embed_tokens.weight
    rnn.{weight,bias}_{ih,hh}_l{k}[_reverse] -> model.layers.{k}.rnn.{weight,bias}_{ih,hh}_l0[_reverse]
    fc.weight [V or C, D*H], fc.bias         -> lm_head.* (causal LM) or score.* (classification)

"word_language_model": pytorch/examples' word_language_model RNNModel (time-major; same weights)
    encoder.weight [V, E]                    -> model.embed_tokens.weight
    rnn.*                                    -> model.layers.{k}.rnn.* (as above)
    decoder.weight [V, H], decoder.bias      -> lm_head.* (tied to the encoder when their values are equal)
```

hf_rnn keeps one single-layer `nn.RNN` / `nn.LSTM` / `nn.GRU` per layer (so that every layer's output is
available), which is why layer k of a stacked PyTorch module becomes layer 0 of `model.layers.{k}.rnn`. The weights
of a time-major and a batch-first module are the same tensors: only the input layout differs.

Python:

```python
from hf_rnn.convert import convert_checkpoint

model = convert_checkpoint("rnnlm.pt", "rnnlm-hf")  # format, cell type, sizes and task inferred
```

Command line: `hf-rnn convert rnnlm.pt rnnlm-hf` (see `hf-rnn convert --help`).
"""

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.utils import logging

from .configuration_rnn import RNNConfig
from .file_utils import atomic_output_dir, check_output_dir
from .modeling_rnn import (
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNPreTrainedModel,
)


logger = logging.get_logger(__name__)

FORMATS = ("tutorial", "word_language_model")
TASKS = ("causal-lm", "sequence-classification", "token-classification")
NONLINEARITIES = ("tanh", "relu")

_TASK_CLASSES = {
    "causal-lm": RNNForCausalLM,
    "sequence-classification": RNNForSequenceClassification,
    "token-classification": RNNForTokenClassification,
}
# Rows of weight_hh per hidden unit: the gate blocks stacked by PyTorch (LSTM i, f, g, o; GRU r, z, n; RNN one).
_CELL_BY_GATE_COUNT = {4: "lstm", 3: "gru", 1: "rnn"}
_GATE_COUNT = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
# Keys of one direction of one PyTorch recurrent layer; "weight_hr" only exists for an LSTM with `proj_size`.
_RNN_KEY = re.compile(r"^rnn\.(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
# Prefixes added by wrappers around a module: nn.DataParallel / DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Config fields that the weights decide; `extra_config` may not change them.
_INFERRED_FIELDS = (
    "vocab_size",
    "embedding_size",
    "hidden_size",
    "num_hidden_layers",
    "cell_type",
    "bidirectional",
    "tie_word_embeddings",
    "num_labels",
    "classifier_pooling",
)
_NESTED_STATE_DICT_KEYS = ("state_dict", "model_state_dict")
_MAX_KEYS_SHOWN = 20


@dataclass(frozen=True)
class _SourceFormat:
    name: str
    embedding: str  # attribute name of the nn.Embedding
    head: str  # attribute name of the nn.Linear head
    description: str


_SOURCE_FORMATS = {
    "tutorial": _SourceFormat(
        "tutorial", "embedding", "fc", "the tutorial's SimpleRNN / RNNLM / RNNClassifier (embedding, rnn, fc)"
    ),
    "word_language_model": _SourceFormat(
        "word_language_model",
        "encoder",
        "decoder",
        "pytorch/examples word_language_model's RNNModel (encoder, rnn, decoder)",
    ),
}


@dataclass
class _Structure:
    """What the key names say about the recurrent stack (before looking at any shape)."""

    num_layers: int
    bidirectional: bool
    has_rnn_biases: bool

    @property
    def directions(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def rnn_keys(self) -> list[str]:
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.has_rnn_biases else [])
        return [
            f"rnn.{name}_l{layer}{direction}"
            for layer in range(self.num_layers)
            for direction in self.directions
            for name in names
        ]


# ---------------------------------------------------------------------------------------------------------------------
# Reading a checkpoint file
# ---------------------------------------------------------------------------------------------------------------------


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a `.safetensors` file or a `torch.save` file, without unpickling arbitrary objects.

    A `torch.save` file is read with `torch.load(path, map_location="cpu", weights_only=True)`, which only rebuilds
    tensors and plain containers: a file holding a pickled whole model (`torch.save(model)`) is refused with a
    `ValueError`, and none of its code runs. Accepted contents: a state dict, or a dict holding one under
    `"state_dict"` or `"model_state_dict"` (a training checkpoint with optimizer state, epoch, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input checkpoint {str(path)!r} does not exist or is not a file.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except SafetensorError as error:
            raise ValueError(f"Could not read {str(path)!r} as a safetensors file: {error}") from error

    save_weights_instead = (
        "In the code that defines the model, load it and save its weights instead: "
        "`torch.save(model.state_dict(), 'weights.pt')`, then convert that file."
    )
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses any class or function it does not know ("Unsupported global: GLOBAL ...")
        if "Unsupported global" in str(error):
            raise ValueError(
                f"{str(path)!r} holds pickled Python objects (such as a whole model saved with `torch.save(model)`), "
                f"which hf_rnn refuses to unpickle because unpickling can run arbitrary code. {save_weights_instead}"
            ) from error
        raise ValueError(
            f"Could not read {str(path)!r} as a state dict: loading it with `weights_only=True` failed (it is "
            f"corrupt, not a PyTorch file, or holds pickled objects). {save_weights_instead}"
        ) from error
    except Exception as error:  # torch.load raises RuntimeError, KeyError, EOFError, ... on files it cannot parse
        raise ValueError(
            f"Could not read {str(path)!r} as a PyTorch checkpoint ({type(error).__name__}: {error}). Expected a "
            "file written by `torch.save(model.state_dict(), path)` or a `.safetensors` file."
        ) from error
    return _extract_state_dict(contents, path)


def _extract_state_dict(contents, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(contents, Mapping):
        raise ValueError(
            f"{str(path)!r} holds a {type(contents).__name__}, not a state dict. Expected the output of "
            "`torch.save(model.state_dict(), path)`."
        )
    for key in _NESTED_STATE_DICT_KEYS:
        if isinstance(contents.get(key), Mapping):
            contents = contents[key]
            break
    not_tensors = sorted(str(key) for key, value in contents.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise ValueError(
            f"{str(path)!r} is a dict whose entries {_format_keys(not_tensors)} are not tensors, and it holds no "
            f"state dict under {' or '.join(repr(k) for k in _NESTED_STATE_DICT_KEYS)}. Expected the output of "
            "`torch.save(model.state_dict(), path)`."
        )
    return dict(contents)


# ---------------------------------------------------------------------------------------------------------------------
# Reading a state dict
# ---------------------------------------------------------------------------------------------------------------------


def _format_keys(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = f" and {len(keys) - _MAX_KEYS_SHOWN} more" if len(keys) > _MAX_KEYS_SHOWN else ""
    return f"[{shown}{more}]"


def _strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix that every key shares because the model was wrapped (DataParallel, torch.compile)."""
    state_dict = dict(state_dict)
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
                changed = True
    return state_dict


def detect_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Tell `"tutorial"` (embedding, rnn, fc) from `"word_language_model"` (encoder, rnn, decoder) by key names."""
    keys = list(_strip_wrapper_prefixes(state_dict))
    if any(key.startswith(("transformer_encoder.", "pos_encoder.")) for key in keys):
        raise ValueError(
            "This state dict is word_language_model's TransformerModel (it has `transformer_encoder.*` keys), not a "
            "recurrent model: hf_rnn converts only RNN, LSTM and GRU models."
        )
    matches = [
        name
        for name, source in _SOURCE_FORMATS.items()
        if any(key.startswith((f"{source.embedding}.", f"{source.head}.")) for key in keys)
    ]
    if len(matches) != 1:
        expected = "; ".join(
            f"{name!r}: {source.embedding}.weight, rnn.weight_ih_l0, ..., {source.head}.weight"
            for name, source in _SOURCE_FORMATS.items()
        )
        reason = "matches both formats" if matches else "matches neither format"
        raise ValueError(
            f"Cannot tell the checkpoint format from its keys {_format_keys(keys)}: it {reason}. Expected keys "
            f"of {expected}. Pass `format` (one of {list(FORMATS)}) to choose one."
        )
    return matches[0]


def _read_structure(keys) -> _Structure:
    """Layers, directions and biases of the recurrent stack, from the names of the `rnn.*` keys."""
    layers, bidirectional, has_biases = set(), False, False
    for key in keys:
        match = _RNN_KEY.match(key)
        if match is None:
            continue
        name, layer, reverse = match.groups()
        if name == "weight_hr":
            raise ValueError(
                f"The checkpoint has `{key}`: its nn.LSTM uses `proj_size` (a projected hidden state), which hf_rnn "
                "does not implement. Only LSTMs without `proj_size` can be converted."
            )
        layers.add(int(layer))
        bidirectional |= reverse is not None
        has_biases |= name.startswith("bias")
    # With no `rnn.*` key at all, expect one layer so that the missing-key report names what is needed.
    num_layers = max(layers) + 1 if layers else 1
    return _Structure(num_layers=num_layers, bidirectional=bidirectional, has_rnn_biases=has_biases or not layers)


def _check_keys(
    state_dict: Mapping[str, torch.Tensor],
    source: _SourceFormat,
    structure: _Structure,
    task: str | None,
    tie_word_embeddings: bool | None,
) -> None:
    """Raise a ValueError naming every missing and every unexpected key.

    Allowed absences, all exact: every `rnn.bias_*` (an nn.RNN/LSTM/GRU built with `bias=False`: zero biases),
    `{head}.bias` (an nn.Linear with `bias=False`: zero bias), and one of the embedding and head weights when the
    two are tied (`safetensors.torch.save_model` keeps one name of shared tensors).
    """
    present = set(state_dict)
    embedding_key, head_key, head_bias_key = (
        f"{source.embedding}.weight",
        f"{source.head}.weight",
        f"{source.head}.bias",
    )
    expected = {embedding_key, head_key, head_bias_key, *structure.rnn_keys()}
    if head_bias_key not in present:
        expected.discard(head_bias_key)
    may_be_tied = tie_word_embeddings is not False and task in (None, "causal-lm")
    if may_be_tied and (embedding_key in present) != (head_key in present):
        expected.discard(head_key if embedding_key in present else embedding_key)
    missing, unexpected = expected - present, present - expected
    if missing or unexpected:
        raise ValueError(
            f"The state dict does not match the {source.name!r} format ({source.description}, "
            f"{structure.num_layers} layer(s){', bidirectional' if structure.bidirectional else ''}). "
            f"Missing keys: {_format_keys(missing) if missing else 'none'}. "
            f"Unexpected keys: {_format_keys(unexpected) if unexpected else 'none'}. "
            f"Expected keys: {_format_keys(expected)}."
        )


def _check_shape(key: str, tensor: torch.Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(
            f"`{key}` has shape {list(tensor.shape)}, but {meaning} gives {list(expected)}: the weights are not "
            "from one consistent model."
        )


def _resolve_cell_type(gate_count: int, cell_type: str | None, nonlinearity: str | None, key: str) -> str:
    if gate_count not in _CELL_BY_GATE_COUNT:
        raise ValueError(
            f"`{key}` stacks {gate_count} gate blocks of the hidden size; expected 4 (LSTM), 3 (GRU) or 1 (RNN)."
        )
    if nonlinearity is not None and nonlinearity not in NONLINEARITIES:
        raise ValueError(f"`nonlinearity` must be one of {list(NONLINEARITIES)}, got {nonlinearity!r}.")
    inferred = _CELL_BY_GATE_COUNT[gate_count]
    if cell_type is None:
        if inferred != "rnn":
            if nonlinearity == "relu":
                raise ValueError(
                    f"`nonlinearity='relu'` applies to a vanilla nn.RNN, but the weights are a {inferred.upper()}'s."
                )
            return inferred
        if nonlinearity is None:
            logger.warning(
                "The weights are a vanilla nn.RNN's, whose non-linearity they cannot show: converting it as tanh "
                "(nn.RNN's default). Pass `nonlinearity='relu'` (`--nonlinearity relu`) if it was built with "
                "`nonlinearity='relu'`."
            )
        return f"rnn_{nonlinearity or 'tanh'}"
    # word_language_model's rnn_type names ("LSTM", "RNN_TANH", ...) are hf_rnn's cell types in capitals.
    cell_type = cell_type.lower()
    if cell_type not in _GATE_COUNT:
        raise ValueError(f"`cell_type` must be one of {list(_GATE_COUNT)}, got {cell_type!r}.")
    if _GATE_COUNT[cell_type] != gate_count:
        raise ValueError(
            f"`cell_type={cell_type!r}` needs {_GATE_COUNT[cell_type]} gate block(s) per hidden unit, but `{key}` "
            f"has {gate_count} (a {inferred.upper()}'s weights)."
        )
    if nonlinearity is not None and cell_type != f"rnn_{nonlinearity}":
        raise ValueError(
            f"`nonlinearity={nonlinearity!r}` contradicts `cell_type={cell_type!r}`; give one of them "
            "(`nonlinearity` only applies to a vanilla RNN)."
        )
    return cell_type


def _resolve_task(task: str | None, source: _SourceFormat, head_outputs: int, vocab_size: int) -> str:
    if source.name == "word_language_model":
        if task not in (None, "causal-lm"):
            raise ValueError(
                f"word_language_model's RNNModel is a language model: `task` must be 'causal-lm', got {task!r}."
            )
        return "causal-lm"
    if task is not None:
        return task
    # The tutorial's language model and classifier have the same keys: only the head's width tells them apart.
    if head_outputs == vocab_size:
        logger.info(f"Inferred task='causal-lm': `fc` has one output per token of the vocabulary ({vocab_size}).")
        return "causal-lm"
    logger.warning(
        f"Inferred task='sequence-classification' (the tutorial's RNNClassifier): `fc` has {head_outputs} outputs, "
        f"not one per token of the vocabulary ({vocab_size}). Pass `task='token-classification'` "
        "(`--task token-classification`) if `fc` is applied "
        "to every step rather than to the last hidden state."
    )
    return "sequence-classification"


def _resolve_tying(
    tie_word_embeddings: bool | None, embedding: torch.Tensor | None, head: torch.Tensor | None, keys: tuple[str, str]
) -> bool:
    """Tied when the head weight and the embedding are the same tensor, or when only one of them was saved."""
    if embedding is None or head is None:
        return True  # _check_keys allowed the absence only for tied weights
    same_values = embedding.shape == head.shape and torch.equal(embedding, head)
    if tie_word_embeddings is None:
        return same_values
    if tie_word_embeddings and not same_values:
        raise ValueError(
            f"`tie_word_embeddings=True` shares one tensor between `{keys[0]}` and `{keys[1]}`, but the checkpoint "
            "holds different values for them, so tying would change the outputs. Leave `tie_word_embeddings` unset."
        )
    return tie_word_embeddings


# ---------------------------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------------------------


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    format: str | None = None,
    task: str | None = None,
    cell_type: str | None = None,
    nonlinearity: str | None = None,
    num_labels: int | None = None,
    tie_word_embeddings: bool | None = None,
    dropout: float | None = None,
    extra_config: Mapping | None = None,
) -> RNNPreTrainedModel:
    """Build the hf_rnn model (in eval mode) whose outputs equal those of the plain-PyTorch model `state_dict` is from.

    The config is inferred from key names and tensor shapes: `vocab_size` and `embedding_size` from the embedding,
    `hidden_size` from `weight_hh_l0` [gates * H, H], `num_hidden_layers` from the `_l{k}` suffixes, `bidirectional`
    from `_reverse` keys, the cell type from the gate count (4 LSTM, 3 GRU, 1 RNN), `num_labels` from the head.

    Args:
        state_dict: the plain model's `state_dict()` (a `module.` or `_orig_mod.` prefix on every key is dropped).
        format: `"tutorial"` or `"word_language_model"`; detected from the key names when None.
        task: `"causal-lm"` (`RNNForCausalLM`: the head is applied to every step, over the vocabulary),
            `"sequence-classification"` (`RNNForSequenceClassification` with `classifier_pooling="last"`: the head
            is applied to the top layer's final hidden state `h_n[-1]`, or `cat(h_n[-2], h_n[-1])` when
            bidirectional, as the tutorial's RNNClassifier does; NOT to `output[:, -1]`, whose backward half has
            seen one token only), or `"token-classification"` (`RNNForTokenClassification`: a per-step head whose
            width is not the vocabulary, e.g. a bidirectional tagger). When None: "causal-lm" for
            word_language_model; for the tutorial format "causal-lm" if the head has `vocab_size` outputs, else
            "sequence-classification" (with a warning, since the weights cannot show where the head is applied).
        cell_type: `"rnn_tanh"`, `"rnn_relu"`, `"lstm"` or `"gru"` (word_language_model's `"RNN_TANH"`, ...,
            `"LSTM"` also accepted); checked against the gate count of the weights. Inferred when None.
        nonlinearity: `"tanh"` or `"relu"`, for a vanilla nn.RNN only. The weights of a tanh and a ReLU RNN look
            alike, so this cannot be inferred: it defaults to `"tanh"` (nn.RNN's default). A ReLU RNN converted as
            tanh gives different outputs, so pass `"relu"` (or `cell_type="rnn_relu"`) for one.
        num_labels: for the classification tasks, checked against the head's number of outputs.
        tie_word_embeddings: for "causal-lm": None ties the head to the embedding when their weights are equal
            (`decoder.weight = encoder.weight`, as word_language_model's `--tied`); True requires equal weights;
            False keeps two copies.
        dropout: sets `embedding_dropout`, `hidden_dropout` and `output_dropout` of the config (training only; the
            state dict holds no dropout). For word_language_model this mirrors its `--dropout`, which `drop` applies
            to the embedding and the output and nn.LSTM applies between layers. Default 0.
        extra_config: further `RNNConfig` fields, e.g. `{"eos_token_id": 1, "id2label": {...}}` or a separate
            `hidden_dropout`; fields that the weights determine (sizes, cell type, ...) cannot be set here.

    Raises:
        ValueError: unknown format, missing or unexpected keys (all listed by name), inconsistent shapes, or
            options that contradict the weights.
    """
    state_dict = _strip_wrapper_prefixes(state_dict)
    if format is None:
        format = detect_format(state_dict)
    elif format not in _SOURCE_FORMATS:
        raise ValueError(f"`format` must be one of {list(FORMATS)}, got {format!r}.")
    source = _SOURCE_FORMATS[format]
    if task is not None and task not in TASKS:
        raise ValueError(f"`task` must be one of {list(TASKS)}, got {task!r}.")
    if dropout is not None and (
        isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1
    ):
        raise ValueError(f"`dropout` is a probability and must lie in [0, 1), got {dropout!r}.")
    extra_config = dict(extra_config or {})
    overridden = sorted(set(extra_config) & set(_INFERRED_FIELDS))
    if overridden:
        raise ValueError(
            f"`extra_config` sets {overridden}, which the weights determine (or which have their own argument): "
            "remove them."
        )

    # 1. Keys: which tensors exist, before any shape is read
    structure = _read_structure(state_dict)
    _check_keys(state_dict, source, structure, task, tie_word_embeddings)
    embedding_key, head_key, head_bias_key = (
        f"{source.embedding}.weight",
        f"{source.head}.weight",
        f"{source.head}.bias",
    )
    embedding, head = state_dict.get(embedding_key), state_dict.get(head_key)

    # 2. Sizes, from shapes: embedding [V, E], weight_hh_l0 [gates * H, H], head [outputs, D * H]
    vocabulary_matrix = embedding if embedding is not None else head
    if vocabulary_matrix.dim() != 2:
        raise ValueError(
            f"`{embedding_key}` must be a [vocab_size, embedding_size] matrix, got {list(vocabulary_matrix.shape)}."
        )
    vocab_size, embedding_size = vocabulary_matrix.shape
    recurrent_weight = state_dict["rnn.weight_hh_l0"]
    if recurrent_weight.dim() != 2 or recurrent_weight.shape[0] % recurrent_weight.shape[1] != 0:
        raise ValueError(
            "`rnn.weight_hh_l0` must be a [gates * hidden_size, hidden_size] matrix, got "
            f"{list(recurrent_weight.shape)}."
        )
    hidden_size = recurrent_weight.shape[1]
    gate_count = recurrent_weight.shape[0] // hidden_size
    cell_type = _resolve_cell_type(gate_count, cell_type, nonlinearity, "rnn.weight_hh_l0")
    num_directions = 2 if structure.bidirectional else 1
    head_matrix = head if head is not None else embedding
    head_outputs = head_matrix.shape[0]

    # 3. Task and head
    task = _resolve_task(task, source, head_outputs, vocab_size)
    if task == "causal-lm":
        if structure.bidirectional:
            raise ValueError(
                "A causal language model cannot be bidirectional, but the checkpoint has `rnn.*_reverse` weights. "
                "Pass `task='token-classification'` (a per-token head) or 'sequence-classification'."
            )
        if head_outputs != vocab_size:
            raise ValueError(
                f"`task='causal-lm'` needs a head over the vocabulary, but `{head_key}` has {head_outputs} outputs "
                f"and `{embedding_key}` {vocab_size} tokens. Pass `task='sequence-classification'` or "
                "'token-classification' for a classifier."
            )
        if num_labels is not None:
            raise ValueError(
                f"`num_labels` only applies to the classification tasks, got num_labels={num_labels} with "
                "task='causal-lm'."
            )
        tied = _resolve_tying(tie_word_embeddings, embedding, head, (embedding_key, head_key))
    else:
        if tie_word_embeddings:
            raise ValueError(f"`tie_word_embeddings=True` only applies to `task='causal-lm'`, got task={task!r}.")
        if num_labels is not None and num_labels != head_outputs:
            raise ValueError(f"`num_labels={num_labels}` but `{head_key}` has {head_outputs} outputs (one per label).")
        tied = False

    # 4. Every tensor's shape against those sizes, so that a mismatch names its key
    if embedding is not None:
        _check_shape(embedding_key, embedding, (vocab_size, embedding_size), f"`{embedding_key}`")
    for layer in range(structure.num_layers):
        input_size = embedding_size if layer == 0 else hidden_size * num_directions
        for direction in structure.directions:
            suffix = f"_l{layer}{direction}"
            rows = gate_count * hidden_size
            meaning = f"{cell_type} with hidden_size={hidden_size}, input size {input_size}"
            _check_shape(f"rnn.weight_ih{suffix}", state_dict[f"rnn.weight_ih{suffix}"], (rows, input_size), meaning)
            _check_shape(f"rnn.weight_hh{suffix}", state_dict[f"rnn.weight_hh{suffix}"], (rows, hidden_size), meaning)
            if structure.has_rnn_biases:
                for name in ("bias_ih", "bias_hh"):
                    _check_shape(f"rnn.{name}{suffix}", state_dict[f"rnn.{name}{suffix}"], (rows,), meaning)
    _check_shape(
        head_key,
        head_matrix,
        (head_outputs, hidden_size * num_directions),
        f"hidden_size={hidden_size} x {num_directions} direction(s)",
    )
    if head_bias_key in state_dict:
        _check_shape(head_bias_key, state_dict[head_bias_key], (head_outputs,), f"`{head_key}`")
    else:
        logger.warning(f"The checkpoint has no `{head_bias_key}`: converting its head as one without bias (zeros).")
    if not structure.has_rnn_biases:
        logger.warning(
            "The checkpoint has no `rnn.bias_*`: converting its recurrent layers as ones without bias (zeros)."
        )

    # 5. Config and model
    fields = dict(
        vocab_size=vocab_size,
        embedding_size=embedding_size,
        hidden_size=hidden_size,
        num_hidden_layers=structure.num_layers,
        cell_type=cell_type,
        bidirectional=structure.bidirectional,
        tie_word_embeddings=tied,
    )
    if dropout is not None:
        fields.update(embedding_dropout=dropout, hidden_dropout=dropout, output_dropout=dropout)
    if task != "causal-lm":
        fields.update(num_labels=head_outputs, classifier_pooling="last")
        id2label = extra_config.get("id2label")
        if id2label is not None and len(id2label) != head_outputs:
            raise ValueError(f"`id2label` names {len(id2label)} labels, but `{head_key}` has {head_outputs} outputs.")
    fields.update(extra_config)
    config = RNNConfig(**fields)
    model = _TASK_CLASSES[task](config)

    # 6. Weights, renamed: rnn.{name}_l{k}{dir} -> model.layers.{k}.rnn.{name}_l0{dir}
    head_name = "lm_head" if task == "causal-lm" else "score"
    converted = {"model.embed_tokens.weight": vocabulary_matrix, f"{head_name}.weight": head_matrix}
    converted[f"{head_name}.bias"] = state_dict.get(head_bias_key, torch.zeros(head_outputs, dtype=head_matrix.dtype))
    for layer in range(structure.num_layers):
        for direction in structure.directions:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                source_key = f"rnn.{name}_l{layer}{direction}"
                target_key = f"model.layers.{layer}.rnn.{name}_l0{direction}"
                if name.startswith("bias") and not structure.has_rnn_biases:
                    converted[target_key] = torch.zeros(gate_count * hidden_size, dtype=recurrent_weight.dtype)
                else:
                    converted[target_key] = state_dict[source_key]
    # strict: every parameter of the hf_rnn model must come from the checkpoint (a renaming bug fails here)
    model.load_state_dict(converted, strict=True)
    if vocabulary_matrix.is_floating_point() and vocabulary_matrix.dtype != torch.float32:
        model.to(vocabulary_matrix.dtype)  # keep a half-precision checkpoint in half precision
    model.eval()
    logger.info(
        f"Converted a {source.name!r} checkpoint into {type(model).__name__}: cell_type={cell_type}, "
        f"{structure.num_layers} layer(s), hidden_size={hidden_size}, vocab_size={vocab_size}, tied={tied}."
    )
    return model


def convert_checkpoint(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, *, overwrite: bool = False, **options
) -> RNNPreTrainedModel:
    """Convert a plain-PyTorch checkpoint file and `save_pretrained` the hf_rnn model (safetensors) into `output_dir`.

    `input_path` is read with `load_state_dict` (a `torch.save` state dict, or `.safetensors`); `options` are
    `convert_state_dict`'s keyword arguments. The model is written to a temporary sibling folder that is renamed to
    `output_dir` only once complete, so a failed conversion leaves no (half-written) `output_dir`. An existing
    non-empty `output_dir` is replaced only with `overwrite=True`, and only if it holds a saved model (a config.json)
    and not the input file. Returns the converted model.

    The result loads with `AutoModelForCausalLM` / `AutoModelForSequenceClassification` /
    `AutoModelForTokenClassification.from_pretrained(output_dir)` after `import hf_rnn`, or with
    `trust_remote_code=True` without it.
    """
    input_path, output_dir = Path(input_path), Path(output_dir).absolute()
    check_output_dir(output_dir, overwrite, input_path)  # before the work, so that a doomed run fails at once
    state_dict = load_state_dict(input_path)
    model = convert_state_dict(state_dict, **options)
    with atomic_output_dir(output_dir, overwrite, input_path) as staging:
        model.save_pretrained(staging)
    return model


__all__ = [
    "FORMATS",
    "NONLINEARITIES",
    "TASKS",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_format",
    "load_state_dict",
]
