"""Configuration of hf_rnn's recurrent models (vanilla RNN, LSTM, GRU; stacked; bidirectional)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

CELL_TYPES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
POOLING_MODES = ("last", "mean", "max")

# Every head this package defines, keyed by the transformers Auto class that loads it. Written into
# `config.json` as `auto_map` so that any head loads through remote code from any checkpoint.
AUTO_MAP = {
    "AutoConfig": "configuration_rnn.RNNConfig",
    "AutoModel": "modeling_rnn.RNNModel",
    "AutoModelForCausalLM": "modeling_rnn.RNNForCausalLM",
    "AutoModelForSequenceClassification": "modeling_rnn.RNNForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_rnn.RNNForTokenClassification",
}


@strict
class RNNConfig(PreTrainedConfig):
    r"""
    Configuration of an hf_rnn model: token embedding, a stack of recurrent layers, and a head.

    ```
    input_ids [B, T] -> embed_tokens [B, T, embedding_size] (word_dropout) -> embedding_dropout
      -> layer 0 (cell_type, layer_hidden_sizes[0] per direction; weight_drop) -> hidden_dropout
      -> ...
      -> layer num_hidden_layers-1 (hidden_size) -> output_dropout -> head
    loss = head loss + activation_regularization (AR) + temporal_activation_regularization (TAR), in training only
    ```

    The regularisers of AWD-LSTM (Merity et al. 2017, "Regularizing and Optimizing LSTM Language Models") are
    config fields: `weight_drop`, `locked_dropout`, `word_dropout`, `layer_hidden_sizes`,
    `activation_regularization` and `temporal_activation_regularization`. All default to off, and none of them
    adds a parameter: a model trained with them saves and loads plain weights, and evaluates like any other.

    Args:
        vocab_size (`int`, defaults to 10000):
            Number of tokens in the vocabulary; token ids must lie in `[0, vocab_size)`.
        embedding_size (`int`, defaults to 256):
            Width of the token embedding (the input size of the first recurrent layer).
        hidden_size (`int`, defaults to 256):
            Width of the recurrent state of every layer, per direction. A bidirectional layer outputs
            `2 * hidden_size` features.
        num_hidden_layers (`int`, defaults to 2):
            Number of stacked recurrent layers.
        cell_type (`str`, defaults to `"lstm"`):
            One of `"rnn_tanh"`, `"rnn_relu"` (Elman RNN with that non-linearity), `"lstm"`, `"gru"`. All run on
            PyTorch's fused `nn.RNN` / `nn.LSTM` / `nn.GRU` kernels.
        bidirectional (`bool`, defaults to `False`):
            Run every layer in both directions and concatenate the outputs. Allowed for the encoder heads
            (`RNNModel`, sequence and token classification); `RNNForCausalLM` refuses it, since a language model
            cannot read the future.
        layer_hidden_sizes (`list[int]`, *optional*):
            Hidden size of each recurrent layer, bottom to top (AWD-LSTM's `[1150, 1150, 400]`), when they differ.
            Needs one entry per layer, and the last must equal `hidden_size` (the width the heads read; with tied
            embeddings, also `embedding_size`). Default: every layer is `hidden_size` wide.
        embedding_dropout (`float`, defaults to 0.0):
            Dropout probability on the token embeddings, in `[0, 1)` (AWD-LSTM's `dropouti`).
        hidden_dropout (`float`, defaults to 0.0):
            Dropout probability on the outputs of every recurrent layer except the last, in `[0, 1)` (AWD-LSTM's
            `dropouth`).
        output_dropout (`float`, defaults to 0.0):
            Dropout probability on the last layer's outputs, before the head (LM head or classifier), in `[0, 1)`
            (AWD-LSTM's `dropout`).
        locked_dropout (`bool`, defaults to `False`):
            Make the three dropouts above variational (Gal & Ghahramani 2016): one mask per sequence and feature,
            shared by every time step, instead of a new mask per step. Padded steps never take part.
        word_dropout (`float`, defaults to 0.0):
            Probability of dropping a whole row of the embedding matrix (a word type: every occurrence of that token
            in the batch becomes zeros; the kept rows are scaled by `1 / (1 - p)`), in `[0, 1)`, during training
            (AWD-LSTM's `dropoute`). Applies to `input_ids`, not to `inputs_embeds`.
        weight_drop (`float`, defaults to 0.0):
            DropConnect (Wan et al. 2013) on the hidden-to-hidden weights of every layer, in `[0, 1)`: one mask
            per forward, shared by every time step and every row, during training (AWD-LSTM's `wdrop`). The fused
            kernels run on the dropped weights; the saved weights are the plain ones.
        activation_regularization (`float`, defaults to 0.0):
            AR (Merity et al. 2017): adds `activation_regularization * mean(h ** 2)` of the last layer's outputs
            after `output_dropout` to the loss, in training only (AWD-LSTM's `alpha`, 2). Padded steps are left
            out; under gradient accumulation the mean is over the whole accumulated batch, like the loss.
        temporal_activation_regularization (`float`, defaults to 0.0):
            TAR: adds `temporal_activation_regularization * mean((h_t - h_(t-1)) ** 2)` of the last layer's outputs
            before dropout to the loss, in training only (AWD-LSTM's `beta`, 1), over pairs of adjacent real
            tokens.
        tie_word_embeddings (`bool`, defaults to `False`):
            Share the LM head's weight with the input embedding (Press & Wolf 2017; Inan et al. 2017). This
            needs `hidden_size == embedding_size`; hf_rnn refuses other sizes with a `ValueError` rather than
            adding a hidden projection layer, so that the parameters are exactly the classic model's.
        classifier_pooling (`str`, defaults to `"last"`):
            How `RNNForSequenceClassification` reduces a sequence to one vector: `"last"` (the forward direction
            at the last real token, concatenated with the backward direction at the first real token), `"mean"`
            or `"max"` over real tokens. Padding never takes part.
        initializer_range (`float`, defaults to 0.1):
            Standard deviation of the normal initialisation of the embedding and the heads.
        use_cache (`bool`, defaults to `True`):
            Whether forward returns the recurrent state (`cache`) by default, as `generate()` needs.
        pad_token_id (`int`, *optional*):
            Id of the padding token (used by `generate()` for finished rows).
        bos_token_id (`int`, *optional*):
            Id of the beginning-of-sequence token.
        eos_token_id (`int` or `list[int]`, *optional*):
            Id(s) of the end-of-sequence token.

    The usual `num_labels`, `id2label`, `label2id` and `problem_type` ("regression",
    "single_label_classification", "multi_label_classification") of every transformers config apply to the
    classification heads.

    Example:

    ```python
    >>> from hf_rnn import RNNConfig, RNNForCausalLM
    >>> config = RNNConfig(vocab_size=1000, cell_type="gru", hidden_size=128, embedding_size=128)
    >>> model = RNNForCausalLM(config)
    ```
    """

    model_type = "hf_rnn"

    # Sizes
    vocab_size: int = 10000
    embedding_size: int = 256
    hidden_size: int = 256
    num_hidden_layers: int = 2
    # Recurrence
    # Choices are typed `str`, not `Literal`, and checked in `_check_fields`: `@strict` reports a `Literal` mismatch
    # with an error class that is not a ValueError.
    cell_type: str = "lstm"  # one of CELL_TYPES
    bidirectional: bool = False
    layer_hidden_sizes: list[int] | None = None
    # Regularisation: dropout after the embedding, between layers, before the head; the rest of AWD-LSTM's toolbox
    embedding_dropout: float = 0.0
    hidden_dropout: float = 0.0
    output_dropout: float = 0.0
    locked_dropout: bool = False
    word_dropout: float = 0.0
    weight_drop: float = 0.0
    activation_regularization: float | int = 0.0  # int too: AWD-LSTM writes alpha=2, beta=1
    temporal_activation_regularization: float | int = 0.0
    # Heads
    tie_word_embeddings: bool = False
    classifier_pooling: str = "last"  # one of POOLING_MODES
    initializer_range: float = 0.1
    # Generation
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        # Checked here as well as in `validate_architecture` (which `@strict` runs, wrapping errors in a class
        # that is not a ValueError) so that callers can write `except ValueError`.
        self._check_fields()
        # transformers only warns about label maps that disagree with `num_labels`, then replaces them by
        # LABEL_0.. (losing the names); refuse instead. `from_dict` drops saved maps when re-heading.
        num_labels = kwargs.get("num_labels")
        for name in ("id2label", "label2id"):
            labels = getattr(self, name)
            if num_labels is not None and labels is not None and len(labels) != num_labels:
                raise ValueError(
                    f"`{name}` has {len(labels)} labels but `num_labels={num_labels}`: pass one label per class "
                    f"(or leave out `num_labels`, which the label maps imply)."
                )
        if self.label2id is not None and self.id2label is None and num_labels is None:
            raise ValueError(
                f"`label2id` {self.label2id} needs `id2label` (its inverse) too; without it transformers replaces the "
                "labels by LABEL_0 and LABEL_1."
            )
        super().__post_init__(**kwargs)
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # `from_pretrained(path, num_labels=N)` re-heads a checkpoint: its saved label maps give way to N new ones
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and len(config_dict.get("id2label") or {}) not in (0, num_labels):
            config_dict = {k: v for k, v in config_dict.items() if k not in ("id2label", "label2id")}
        return super().from_dict(config_dict, **kwargs)

    def validate_architecture(self):
        """Part of `@strict` validation: runs at construction and again in `save_pretrained`."""
        self._check_fields()

    def _check_fields(self):
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.cell_type not in CELL_TYPES:
            raise ValueError(f"`cell_type` must be one of {list(CELL_TYPES)}, got {self.cell_type!r}.")
        if self.classifier_pooling not in POOLING_MODES:
            raise ValueError(
                f"`classifier_pooling` must be one of {list(POOLING_MODES)}, got {self.classifier_pooling!r}."
            )
        for name in ("embedding_dropout", "hidden_dropout", "output_dropout", "word_dropout", "weight_drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` is a dropout probability and must lie in [0, 1), got {value!r}.")
        for name in ("activation_regularization", "temporal_activation_regularization"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < float("inf"):
                raise ValueError(f"`{name}` is a loss weight and must be a finite number >= 0, got {value!r}.")
        if self.layer_hidden_sizes is not None:
            sizes = self.layer_hidden_sizes
            if not isinstance(sizes, (list, tuple)) or any(
                isinstance(size, bool) or not isinstance(size, int) or size <= 0 for size in sizes
            ):
                raise ValueError(f"`layer_hidden_sizes` must be a list of positive integers, got {sizes!r}.")
            if len(sizes) != self.num_hidden_layers:
                raise ValueError(
                    f"`layer_hidden_sizes` has {len(sizes)} entries but `num_hidden_layers={self.num_hidden_layers}`: "
                    "give one hidden size per layer."
                )
            if sizes[-1] != self.hidden_size:
                raise ValueError(
                    f"The last of `layer_hidden_sizes` {list(sizes)} is the width the heads read, so it must equal "
                    f"`hidden_size={self.hidden_size}`; set `hidden_size={sizes[-1]}` or change the last entry."
                )
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
            raise ValueError(f"`initializer_range` must be a positive number, got {self.initializer_range!r}.")
        if self.tie_word_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                "`tie_word_embeddings=True` shares the LM head's [vocab_size, hidden_size] weight with the "
                f"[vocab_size, embedding_size] embedding, so it needs `embedding_size == hidden_size`; got "
                f"embedding_size={self.embedding_size} and hidden_size={self.hidden_size}. Set both to the same "
                "value or set `tie_word_embeddings=False`."
            )
        if self.bidirectional and self.tie_word_embeddings:
            raise ValueError(
                "`tie_word_embeddings=True` is for causal language models, which cannot be bidirectional; "
                "set `bidirectional=False` or `tie_word_embeddings=False`."
            )
        for name in ("pad_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`{name}` must be None or an id in [0, {self.vocab_size - 1}], got {value!r}.")
        eos = self.eos_token_id if isinstance(self.eos_token_id, list) else [self.eos_token_id]
        for value in eos:
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"`eos_token_id` must be None or ids in [0, {self.vocab_size - 1}], got {self.eos_token_id!r}."
                )
        if self.id2label is not None and sorted(int(i) for i in self.id2label) != list(range(len(self.id2label))):
            raise ValueError(
                f"`id2label` keys must be the label ids 0..{len(self.id2label) - 1} (one per output of the "
                f"classifier), got {sorted(int(i) for i in self.id2label)}."
            )
        if self.id2label is not None and self.label2id is not None:
            # label2id must invert id2label; JSON turns id2label's keys into strings, so compare ids as integers
            inverse = {label: int(i) for i, label in self.id2label.items()}
            if {label: int(i) for label, i in self.label2id.items()} != inverse:
                raise ValueError(
                    f"`label2id` {self.label2id} and `id2label` {self.id2label} must describe the same label ids (label2id must be the inverse of id2label)."
                )

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def hidden_sizes(self) -> list[int]:
        """Hidden size of every layer, bottom to top (`layer_hidden_sizes`, or `hidden_size` for all)."""
        return list(self.layer_hidden_sizes) if self.layer_hidden_sizes is not None else [self.hidden_size] * self.num_hidden_layers

    @property
    def num_state_tensors(self) -> int:
        """Tensors in one layer's recurrent state: (h, c) for an LSTM, h otherwise."""
        return 2 if self.cell_type == "lstm" else 1


__all__ = ["RNNConfig"]
