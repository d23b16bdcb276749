"""hf_rnn models: vanilla RNN (tanh/ReLU), LSTM and GRU language models and classifiers for transformers.

Reads top to bottom: padding helpers, the recurrent state cache, one recurrent layer, the pretrained base
class, output classes, the backbone (`RNNModel`) and the heads (causal LM, sequence and token
classification).

Shapes: B batch, T time steps, E `embedding_size`, H `hidden_size`, D directions (1 or 2), S state tensors
per layer (2 for an LSTM's (h, c), 1 otherwise), V `vocab_size`.
"""

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import initialization as init
from transformers.cache_utils import Cache, LinearAttentionCacheLayerMixin
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import ModelOutput
from transformers.modeling_utils import PreTrainedModel, slice_logits_to_keep
from transformers.utils import logging

from .configuration_rnn import RNNConfig


logger = logging.get_logger(__name__)

_RNN_MODULES = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
# PyTorch's fused single-step kernels (what nn.LSTMCell & co. run), same weight layout as the sequence modules
_CELL_FUNCTIONS = {
    "rnn_tanh": torch.rnn_tanh_cell,
    "rnn_relu": torch.rnn_relu_cell,
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
}


# ---------------------------------------------------------------------------------------------------------------------
# Padding helpers
#
# A recurrence that skips masked steps gives, at every real position, the outputs of running the cell over that
# row's real tokens alone. So any 0/1 mask (left padding, right padding, or holes such as `1 1 0 0 1`) is handled
# exactly by moving each row's real tokens to the front in their original order, packing the rows by their
# number of real tokens (fused kernels, each row starting from its own initial state and stopping at its own
# length), and scattering the outputs back. Zeroing padded inputs instead is not exact: gate biases move an
# LSTM/GRU state even on a zero input.
# ---------------------------------------------------------------------------------------------------------------------


def _trailing_mask(attention_mask: torch.Tensor | None, batch_size: int, seq_len: int, has_cache: bool):
    """Validate a [B, T'] mask and return its last T columns as a bool tensor, or None when all are real tokens.

    With a cache, a mask may cover the past tokens too (transformers' convention in `generate()`); the past is
    already folded into the state, so only the columns of the current tokens matter.
    """
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2 or attention_mask.shape[0] != batch_size:
        raise ValueError(
            f"`attention_mask` must have shape [batch_size, sequence_length] = [{batch_size}, {seq_len}], got "
            f"{list(attention_mask.shape)}."
        )
    mask_len = attention_mask.shape[1]
    if mask_len < seq_len or (mask_len > seq_len and not has_cache):
        raise ValueError(
            f"`attention_mask` has {mask_len} columns but the input has {seq_len} tokens; it must have exactly "
            f"{seq_len} columns (or more, covering past tokens, when a `cache` is passed)."
        )
    # Only the current tokens' columns are read (and checked): the past ones are folded into the state already, and
    # checking them would cost generate() work that grows with every step. Integer masks (generate()'s) take one
    # fused min/max: at most two small ops per call on the decode path.
    columns = attention_mask[:, -seq_len:]  # [B, T]
    if columns.dtype == torch.bool:
        return None if bool(columns.all()) else columns
    if columns.dtype.is_floating_point:
        valid = bool(((columns == 0) | (columns == 1)).all())
    else:
        low, high = (int(value) for value in torch.aminmax(columns))
        if low == high == 1:
            return None  # fast path: every token real, no packing, no gather
        valid = low >= 0 and high <= 1
    if not valid:
        raise ValueError(
            "`attention_mask` must hold only 1 (real token) and 0 (padding), got values "
            f"{columns.unique().tolist()[:8]}."
        )
    mask = columns.bool()
    if bool(mask.all()):
        return None  # fast path: no packing, no gather
    return mask


@dataclass
class _PackingPlan:
    order: torch.Tensor | None  # [B, T] positions of the real tokens first (stable), then the pads; None: right padding
    lengths: torch.Tensor  # [B] number of real tokens per row
    mask: torch.Tensor  # [B, T] bool

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "_PackingPlan":
        lengths = mask.sum(dim=1)
        if bool((mask[:, :-1] >= mask[:, 1:]).all()):
            # right padding (real tokens already first): pack directly, no gather or scatter
            return cls(order=None, lengths=lengths, mask=mask)
        # argsort on 0 (real) / 1 (pad) with a stable sort keeps the real tokens in order
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        return cls(order=order, lengths=lengths, mask=mask)

    def pack(self, inputs: torch.Tensor) -> PackedSequence:
        """[B, T, F] padded inputs -> PackedSequence of each row's real tokens."""
        if self.order is not None:
            inputs = inputs.gather(1, self.order.unsqueeze(-1).expand(-1, -1, inputs.shape[-1]))
        # A row without real tokens is packed with length 1; `empty_rows` restores its state afterwards.
        lengths = self.lengths.clamp(min=1).cpu()
        return pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)

    def unpack(self, packed: PackedSequence) -> torch.Tensor:
        """PackedSequence -> [B, T, F] outputs at the original positions, zeros at padded positions."""
        padded, _ = pad_packed_sequence(packed, batch_first=True, total_length=self.mask.shape[1])
        if self.order is not None:
            index = self.order.unsqueeze(-1).expand(-1, -1, padded.shape[-1])
            padded = torch.zeros_like(padded).scatter(1, index, padded)
        elif not bool(self.empty_rows.any()):
            return padded  # pad_packed_sequence already zeroed the padded steps
        return padded.masked_fill(~self.mask.unsqueeze(-1), 0.0)

    @property
    def empty_rows(self) -> torch.Tensor:
        return self.lengths == 0


def _map_packed(function, packed: PackedSequence) -> PackedSequence:
    """Apply an elementwise function (dropout) to the data of a PackedSequence."""
    return packed._replace(data=function(packed.data))


def _packed_rows(packed: PackedSequence) -> torch.Tensor:
    """[N] index of the (sorted) row of every element of `packed.data`, which is time-major: at step t, rows
    0..batch_sizes[t]-1."""
    batch_sizes = packed.batch_sizes  # [T] on CPU
    steps = torch.repeat_interleave(torch.arange(len(batch_sizes)), batch_sizes)  # [N] time step of each element
    offsets = torch.cumsum(batch_sizes, 0) - batch_sizes  # [T] first element of each step
    return (torch.arange(len(steps)) - offsets[steps]).to(packed.data.device)


class RNNDropout(nn.Module):
    """Dropout on [B, T, F] features, [B, F] vectors or a PackedSequence.

    `locked=True` is variational dropout (Gal & Ghahramani 2016; AWD-LSTM's LockedDropout): one mask per row and
    feature, shared by every time step, so that a unit dropped at one step is dropped at all of them.
    """

    def __init__(self, p: float, locked: bool):
        super().__init__()
        self.p = p
        self.locked = locked

    def forward(self, inputs):
        if not self.training or self.p == 0.0:
            return inputs
        packed = isinstance(inputs, PackedSequence)
        if not self.locked or (not packed and inputs.dim() < 3):
            dropout = lambda x: F.dropout(x, self.p, training=True)  # noqa: E731
            return _map_packed(dropout, inputs) if packed else dropout(inputs)
        data = inputs.data if packed else inputs
        batch_size = int(inputs.batch_sizes[0]) if packed else inputs.shape[0]
        mask = data.new_empty(batch_size, data.shape[-1]).bernoulli_(1.0 - self.p).div_(1.0 - self.p)  # [B, F]
        if packed:
            return inputs._replace(data=inputs.data * mask[_packed_rows(inputs)])
        return inputs * mask.unsqueeze(1)  # [B, 1, F]: the same mask at every step


# ---------------------------------------------------------------------------------------------------------------------
# Recurrent state
# ---------------------------------------------------------------------------------------------------------------------


class RNNCacheLayer(LinearAttentionCacheLayerMixin):
    """Recurrent state of one layer: `recurrent_states[i]` is a batch-first [B, D, H] tensor (h, and c for an LSTM).

    Batch-first so that beam search reorders it with `index_select(0, beam_idx)`; the state tensors are replaced,
    never written in place, so that autograd graphs of earlier chunks stay valid.
    """

    def lazy_initialization(self, conv_states=None, recurrent_states=None, state_idx: int = 0) -> None:
        if recurrent_states is not None:
            self.device, self.dtype = recurrent_states.device, recurrent_states.dtype

    def update_conv_state(self, conv_states: torch.Tensor, state_idx: int = 0, **kwargs) -> torch.Tensor:
        raise NotImplementedError("Recurrent layers keep no convolution state.")

    def update_recurrent_state(self, recurrent_states: torch.Tensor, state_idx: int = 0, **kwargs) -> torch.Tensor:
        self.lazy_initialization(recurrent_states=recurrent_states)
        self.recurrent_states[state_idx] = recurrent_states
        self.is_recurrent_states_initialized[state_idx] = True
        self.has_previous_state[state_idx] = True
        return recurrent_states

    @property
    def batch_size(self) -> int:
        return self.recurrent_states[0].shape[0] if self.is_recurrent_states_initialized[0] else -1

    def batch_repeat_interleave(self, repeats: int) -> None:
        for i in range(self.number_of_states):
            if self.is_recurrent_states_initialized[i]:
                self.recurrent_states[i] = self.recurrent_states[i].repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        for i in range(self.number_of_states):
            if self.is_recurrent_states_initialized[i]:
                self.recurrent_states[i] = self.recurrent_states[i][indices, ...]


class RNNCache(Cache):
    """The recurrent state of every layer of an hf_rnn model: constant size, whatever the number of tokens seen.

    `cache.layers[i].recurrent_states[j]` is state tensor j (h, then c for an LSTM) of layer i, shape [B, D, H].
    `generate()` uses it unmodified: beam search reorders it, and each decode step feeds one new token.
    """

    def __init__(self, config: RNNConfig):
        super().__init__(
            layers=[RNNCacheLayer(number_of_states=config.num_state_tensors) for _ in range(config.num_hidden_layers)]
        )
        self.seen_tokens = 0

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of time steps folded into the state so far (padded length of a batch)."""
        return self.seen_tokens

    def get_layer_state(self, layer_idx: int) -> tuple[torch.Tensor, ...] | None:
        """The S state tensors of a layer, each [B, D, H], or None before the first forward."""
        layer = self.layers[layer_idx]
        if not layer.is_recurrent_states_initialized[0]:
            return None
        return tuple(layer.recurrent_states[i] for i in range(layer.number_of_states))

    def set_layer_state(self, layer_idx: int, state: tuple[torch.Tensor, ...]) -> None:
        for i, tensor in enumerate(state):
            self.layers[layer_idx].update_recurrent_state(tensor, state_idx=i)

    def detach(self) -> "RNNCache":
        """Cut the autograd graph at the current state (truncated backpropagation through time), in place."""
        for layer in self.layers:
            for i in range(layer.number_of_states):
                if layer.is_recurrent_states_initialized[i]:
                    layer.recurrent_states[i] = layer.recurrent_states[i].detach()
        return self


# ---------------------------------------------------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------------------------------------------------


class RNNLayer(nn.Module):
    """One recurrent layer (both directions when bidirectional) on PyTorch's fused kernels.

    One module per layer (rather than one multi-layer `nn.LSTM`) so that every layer's outputs are available for
    `output_hidden_states` and layers can differ in width; on CPU the fused multi-layer kernel also runs layer after
    layer, so nothing is lost.
    """

    def __init__(self, config: RNNConfig, input_size: int, hidden_size: int):
        super().__init__()
        self.cell_type = config.cell_type
        self.weight_drop = config.weight_drop
        module_class = _RNN_MODULES[config.cell_type]
        kwargs = {"nonlinearity": config.cell_type[4:]} if module_class is nn.RNN else {}
        self.rnn = module_class(input_size, hidden_size, batch_first=True, bidirectional=config.bidirectional, **kwargs)

    def forward(self, inputs, state: tuple[torch.Tensor, ...] | None):
        """inputs: [B, T, F] or a PackedSequence; state: S tensors [B, D, H] or None (zeros).

        Returns the outputs ([B, T, D*H] or packed) and the final state (S tensors [B, D, H]).
        """
        dropping = self.training and self.weight_drop > 0.0
        if not dropping and not isinstance(inputs, PackedSequence) and inputs.shape[1] == 1 and not self.rnn.bidirectional:
            return self._step(inputs, state)
        hx = None
        if state is not None:
            # cache layout [B, D, H] -> PyTorch layout [D, B, H]
            hx = tuple(s.transpose(0, 1).contiguous() for s in state)
            hx = hx if self.cell_type == "lstm" else hx[0]
        if dropping:
            outputs, final = self._run_weight_dropped(inputs, hx)
        else:
            outputs, final = self.rnn(inputs, hx)
        final = final if self.cell_type == "lstm" else (final,)
        return outputs, tuple(s.transpose(0, 1) for s in final)

    def _step(self, inputs: torch.Tensor, state: tuple[torch.Tensor, ...] | None):
        """One time step ([B, 1, F]) with the single-step kernel that nn.LSTMCell & co. use.

        A decode step of generate() lands here. The sequence modules pay a large fixed cost per call (oneDNN on CPU:
        ~4 ms for one LSTM step at hidden 256 against ~0.07 ms here, see benchmarks/generation_speed.py); the
        results agree to float rounding.
        """
        rnn = self.rnn
        x = inputs[:, 0]  # [B, F]
        if state is None:
            zeros = x.new_zeros(x.shape[0], rnn.hidden_size)
            state = (zeros, zeros) if self.cell_type == "lstm" else (zeros,)
        else:
            state = tuple(s[:, 0] for s in state)  # [B, 1, H] -> [B, H]
        weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        if self.cell_type == "lstm":
            final = _CELL_FUNCTIONS["lstm"](x, state, *weights)  # (h, c), each [B, H]
        else:
            final = (_CELL_FUNCTIONS[self.cell_type](x, state[0], *weights),)
        final = tuple(s.unsqueeze(1) for s in final)  # [B, D=1, H]
        return final[0], final  # the output of one step is h: [B, 1, H]

    def _run_weight_dropped(self, inputs, hx):
        """The fused kernel with DropConnect on the hidden-to-hidden weights (AWD-LSTM's WeightDrop).

        One mask per forward (shared by every step and row). The module reads its weights from `_flat_weights`, so
        the dropped tensors are swapped in there for this call only: the parameters themselves stay the plain
        weights (what `save_pretrained` writes and the optimiser updates; gradients flow through the mask to them).
        """
        rnn = self.rnn
        plain = rnn._flat_weights
        rnn._flat_weights = [
            F.dropout(weight, self.weight_drop, training=True) if name.startswith("weight_hh") else weight
            for name, weight in zip(rnn._flat_weights_names, plain)
        ]
        try:
            with warnings.catch_warnings():
                # cuDNN warns that the swapped-in weights are not one contiguous buffer: inherent to a fresh mask
                warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
                return rnn(inputs, hx)
        finally:
            rnn._flat_weights = plain


# ---------------------------------------------------------------------------------------------------------------------
# Pretrained base
# ---------------------------------------------------------------------------------------------------------------------


class RNNPreTrainedModel(PreTrainedModel):
    config_class = RNNConfig
    config: RNNConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["RNNLayer"]
    supports_gradient_checkpointing = False
    # The state cannot be rolled back: generate() refuses assisted/speculative decoding with a clear error.
    _is_stateful = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as error:
            # safetensors' own error names neither the file nor the cause (matched by name: remote code imports
            # only torch and transformers)
            if type(error).__name__ != "SafetensorError":
                raise
            raise OSError(
                f"Could not load the weights of {str(pretrained_model_name_or_path)!r}: its model.safetensors is "
                f"truncated or corrupted ({error}). Download or save it again."
            ) from error

    def _init_weights(self, module):
        """Embeddings and heads: normal(0, initializer_range), zero biases (transformers' default).

        Recurrent layers, per gate block: input weights Glorot-uniform (Glorot & Bengio 2010), recurrent weights
        orthogonal (Saxe et al. 2014: keeps the state's norm through time at the start of training), biases zero,
        and an LSTM's forget-gate bias 1 (Jozefowicz et al. 2015) so that the cell remembers by default.
        """
        super()._init_weights(module)
        if not isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
            return
        cell_type = self.config.cell_type
        hidden_size = module.hidden_size
        with torch.no_grad():
            for name, param in module.named_parameters():
                # Gate slices are views that lose the loaded-from-checkpoint flag: check it on the parameter.
                if getattr(param, "_is_hf_initialized", False):
                    continue
                blocks = param.split(hidden_size, dim=0)  # one block per gate
                if name.startswith("weight_ih"):
                    for block in blocks:
                        init.xavier_uniform_(block)
                elif name.startswith("weight_hh"):
                    for block in blocks:
                        init.orthogonal_(block)
                elif name.startswith("bias"):
                    init.zeros_(param)
                    if cell_type == "lstm" and name.startswith("bias_ih"):
                        init.ones_(blocks[1])  # gate order i, f, g, o


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class RNNModelOutput(ModelOutput):
    """
    last_hidden_state (`torch.FloatTensor` [B, T, D*H]): outputs of the last recurrent layer (zeros at padded
        positions).
    cache (`RNNCache`, *optional*): the recurrent state after the last real token of every row; pass it back with
        the next tokens to continue the sequence.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*): the embedding output and the output of every layer.
    """

    last_hidden_state: torch.FloatTensor | None = None
    cache: RNNCache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class RNNCausalLMOutput(ModelOutput):
    """
    loss (`torch.FloatTensor`, *optional*): next-token cross-entropy, when `labels` are given.
    logits (`torch.FloatTensor` [B, T, V]): next-token scores.
    cache (`RNNCache`, *optional*): the recurrent state, as in `RNNModelOutput`.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in `RNNModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: RNNCache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class RNNClassifierOutput(ModelOutput):
    """
    loss (`torch.FloatTensor`, *optional*): classification (or regression) loss, when `labels` are given.
    logits (`torch.FloatTensor`): [B, num_labels] for sequence classification, [B, T, num_labels] per token.
    cache (`RNNCache`, *optional*): the final recurrent state.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*): as in `RNNModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: RNNCache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Backbone
# ---------------------------------------------------------------------------------------------------------------------


class RNNModel(RNNPreTrainedModel):
    """Token embedding and a stack of recurrent layers; returns per-token features and the recurrent state."""

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size)
        self.embedding_dropout = RNNDropout(config.embedding_dropout, config.locked_dropout)
        sizes = config.hidden_sizes
        input_sizes = [config.embedding_size] + [size * config.num_directions for size in sizes[:-1]]
        self.layers = nn.ModuleList(
            [RNNLayer(config, input_size=inputs, hidden_size=size) for inputs, size in zip(input_sizes, sizes)]
        )
        self.hidden_dropout = RNNDropout(config.hidden_dropout, config.locked_dropout)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def _embed(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, E]; in training with `word_dropout`, whole word types are dropped (AWD-LSTM's
        embedded_dropout): one keep/drop draw per vocabulary row, the same for every occurrence in the batch."""
        embeds = self.embed_tokens(input_ids)
        p = self.config.word_dropout
        if self.training and p > 0.0:
            keep = embeds.new_empty(self.config.vocab_size).bernoulli_(1.0 - p).div_(1.0 - p)  # [V]
            embeds = embeds * keep[input_ids].unsqueeze(-1)  # = embedding(ids, weight * keep[:, None])
        return embeds

    def _check_inputs(self, input_ids, inputs_embeds):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"`input_ids` must have shape [batch_size, sequence_length], got {list(input_ids.shape)}.")
            if input_ids.shape[1] == 0:
                raise ValueError("`input_ids` is empty (sequence length 0); pass at least one token per row.")
            # one fused min/max: this runs on every decode step
            low, high = (int(value) for value in torch.aminmax(input_ids)) if input_ids.numel() else (0, 0)
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"`input_ids` holds ids in [{low}, {high}], but the vocabulary "
                    f"has {self.config.vocab_size} tokens: ids must lie in [0, {self.config.vocab_size - 1}]."
                )
        else:
            expected = self.config.embedding_size
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != expected:
                raise ValueError(
                    f"`inputs_embeds` must have shape [batch_size, sequence_length, {expected}], got "
                    f"{list(inputs_embeds.shape)}."
                )
            if inputs_embeds.shape[1] == 0:
                raise ValueError("`inputs_embeds` is empty (sequence length 0); pass at least one step per row.")
            if not bool(torch.isfinite(inputs_embeds).all()):
                raise ValueError("`inputs_embeds` holds NaN or infinite values; every value must be finite.")

    def _check_cache(self, cache: RNNCache, batch_size: int):
        if not isinstance(cache, RNNCache):
            raise TypeError(f"`cache` must be an RNNCache (the `cache` of an earlier output), got {type(cache).__name__}.")
        if self.config.bidirectional:
            raise ValueError(
                "A bidirectional model cannot continue from a `cache`: its backward direction needs the whole "
                "sequence. Pass the full sequence instead."
            )
        if len(cache.layers) != self.config.num_hidden_layers:
            raise ValueError(
                f"`cache` holds {len(cache.layers)} layers but this model has num_hidden_layers="
                f"{self.config.num_hidden_layers}: it comes from another model."
            )
        for i, hidden_size in enumerate(self.config.hidden_sizes):
            expected = (batch_size, self.config.num_directions, hidden_size)
            state = cache.get_layer_state(i)
            if state is not None and (
                len(state) != self.config.num_state_tensors or any(tuple(s.shape) != expected for s in state)
            ):
                shapes = [list(s.shape) for s in state]
                raise ValueError(
                    f"`cache` layer {i} holds state tensors {shapes}, but this model expects "
                    f"{self.config.num_state_tensors} tensor(s) of shape {list(expected)} "
                    f"([batch_size, num_directions, hidden_size], cell_type={self.config.cell_type!r})."
                )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        cache: RNNCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | RNNModelOutput:
        r"""
        input_ids (`torch.LongTensor` [B, T]): token ids in `[0, vocab_size)`.
        attention_mask (`torch.Tensor` [B, T], *optional*): 1 for real tokens, 0 for padding. Any pattern (left or
            right padding, holes) is exact: padded steps leave the state untouched. With a `cache`, it may also
            cover the past tokens ([B, past + T]).
        inputs_embeds (`torch.FloatTensor` [B, T, E], *optional*): instead of `input_ids`.
        cache (`RNNCache`, *optional*): state to continue from (unidirectional models).
        use_cache (`bool`, *optional*): return the final state; defaults to `config.use_cache` (False in training).
        output_hidden_states (`bool`, *optional*): also return the embedding output and every layer's output.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        # 1. Inputs: [B, T] ids -> [B, T, E] embeddings
        self._check_inputs(input_ids, inputs_embeds)
        if inputs_embeds is None:
            inputs_embeds = self._embed(input_ids)
        batch_size, seq_len = inputs_embeds.shape[:2]
        if cache is not None:
            self._check_cache(cache, batch_size)
        hidden_states = self.embedding_dropout(inputs_embeds)

        # 2. Padding: None (every token real, the fast path) or a plan that packs each row's real tokens
        mask = _trailing_mask(attention_mask, batch_size, seq_len, has_cache=cache is not None)
        plan = _PackingPlan.from_mask(mask) if mask is not None else None

        # 3. The recurrent stack: [B, T, E] -> [B, T, D*H], one fused call per layer
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        layer_inputs = plan.pack(hidden_states) if plan is not None else hidden_states
        final_states = []
        for i, layer in enumerate(self.layers):
            initial_state = cache.get_layer_state(i) if cache is not None else None
            layer_outputs, final_state = layer(layer_inputs, initial_state)
            if plan is not None and bool(plan.empty_rows.any()):
                # rows with no real token keep their initial state (zeros without a cache)
                keep = plan.empty_rows.view(-1, 1, 1)
                initial = initial_state if initial_state is not None else tuple(torch.zeros_like(s) for s in final_state)
                final_state = tuple(torch.where(keep, s0, s) for s0, s in zip(initial, final_state))
            final_states.append(final_state)
            if output_hidden_states:
                all_hidden_states += (plan.unpack(layer_outputs) if plan is not None else layer_outputs,)
            is_last = i == len(self.layers) - 1
            if not is_last:
                layer_outputs = self.hidden_dropout(layer_outputs)
            layer_inputs = layer_outputs
        last_hidden_state = all_hidden_states[-1] if output_hidden_states else (
            plan.unpack(layer_inputs) if plan is not None else layer_inputs
        )

        # 4. State: written into the given cache (continuation) or a new one
        if use_cache:
            cache = cache if cache is not None else RNNCache(self.config)
            for i, state in enumerate(final_states):
                cache.set_layer_state(i, state)
            cache.seen_tokens += seq_len
        else:
            cache = None

        if not return_dict:
            return tuple(v for v in (last_hidden_state, cache, all_hidden_states) if v is not None)
        return RNNModelOutput(last_hidden_state=last_hidden_state, cache=cache, hidden_states=all_hidden_states)


# ---------------------------------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------------------------------


class RNNForCausalLM(RNNPreTrainedModel, GenerationMixin):
    """Recurrent language model: `RNNModel` and a linear head over the vocabulary (optionally tied)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: RNNConfig):
        if config.bidirectional:
            raise ValueError(
                "RNNForCausalLM predicts the next token, so it cannot read the future: `bidirectional=True` is not "
                "allowed. Use RNNModel, RNNForSequenceClassification or RNNForTokenClassification for a "
                "bidirectional encoder."
            )
        super().__init__(config)
        self.model = RNNModel(config)
        self.output_dropout = RNNDropout(config.output_dropout, config.locked_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate() must not build a DynamicCache: the first forward creates the RNNCache.
        return False

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: RNNCache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        """The inputs of one `generate()` step: the new tokens ([B, 1] after the prompt; the prompt's embeddings on
        the first step when generation starts from `inputs_embeds`), the cache, the mask and the remaining options.

        GenerationMixin's version also builds position ids, token type ids and 4D masks, which a recurrent model does
        not read, and, for a model registered for remote code (hf_rnn is, so that the Hub can load it), inspects
        `forward`'s signature on every step; on CPU that bookkeeping is a measurable share of a decode step.
        """
        if inputs_embeds is not None and is_first_iteration:
            embeds = inputs_embeds[:, -next_sequence_length:] if next_sequence_length is not None else inputs_embeds
            model_inputs = {"input_ids": None, "inputs_embeds": embeds}
        else:
            ids = input_ids[:, -next_sequence_length:] if next_sequence_length is not None else input_ids
            model_inputs = {"input_ids": ids}
        if cache is not None:
            model_inputs["cache"] = cache
        if attention_mask is not None:
            model_inputs["attention_mask"] = attention_mask
        for key, value in kwargs.items():  # use_cache, logits_to_keep, output_hidden_states...; never the labels
            if key not in ("labels", "next_sequence_length", "position_ids", "token_type_ids"):
                model_inputs.setdefault(key, value)
        # inputs the caller kept on another device (as GenerationMixin allows) move to the model's
        first = model_inputs["input_ids"] if model_inputs["input_ids"] is not None else model_inputs["inputs_embeds"]
        if first.device != self.device and self.device.type != "meta":
            model_inputs = {
                key: value.to(self.device) if isinstance(value, torch.Tensor) else value
                for key, value in model_inputs.items()
            }
        return model_inputs

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        cache: RNNCache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> tuple | RNNCausalLMOutput:
        r"""
        labels (`torch.LongTensor` [B, T], *optional*): usually `input_ids`; shifted inside the loss. Positions set
            to -100 are ignored.
        logits_to_keep (`int` or `torch.Tensor`): compute logits for the last N positions only (0: all).
        kwargs: loss options, passed to the loss: `num_items_in_batch`, which Trainer passes so that gradient
            accumulation normalises the loss over the whole accumulated batch, and `shift_labels` ([B, T]): targets
            already aligned with the inputs (the token after each position), which replace `labels`; truncated
            backpropagation through time uses them so that a segment's last token is trained on the first token of
            the next segment. (A keyword, not a named argument: Trainer treats every named argument containing
            "label" as a label it must find in each batch.)

        Other arguments as in `RNNModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)  # [B, T', H]
        dropped_states = self.output_dropout(hidden_states)
        logits = self.lm_head(dropped_states).float()  # [B, T', V]

        loss = None
        shift_labels = kwargs.pop("shift_labels", None)
        if labels is not None or shift_labels is not None:
            expected = outputs.last_hidden_state.shape[:2]
            for name, value in (("labels", labels), ("shift_labels", shift_labels)):
                if value is not None and value.shape != expected:
                    raise ValueError(f"`{name}` must have shape {list(expected)} like the input, got {list(value.shape)}.")
                if value is not None:
                    _check_class_ids(name, value, self.config.vocab_size, f"the vocabulary has {self.config.vocab_size} tokens")
            if logits.shape[1] != expected[1]:
                raise ValueError("Computing the loss needs the logits of every position: pass `logits_to_keep=0`.")
            if shift_labels is not None:
                kwargs["shift_labels"] = shift_labels.contiguous()  # the loss flattens it with .view
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
            if self.training:
                targets = shift_labels if shift_labels is not None else labels[:, 1:]
                regularization = _activation_regularization(
                    self.config,
                    hidden_states,
                    dropped_states,
                    _trailing_mask(attention_mask, *expected, has_cache=cache is not None),
                    (targets != -100).sum(),
                    kwargs.get("num_items_in_batch"),
                )
                loss = loss + regularization if regularization is not None else loss

        if not return_dict:
            output = tuple(v for v in (logits, outputs.cache, outputs.hidden_states) if v is not None)
            return (loss,) + output if loss is not None else output
        return RNNCausalLMOutput(loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states)


def _check_class_ids(name: str, labels: torch.Tensor, num_classes: int, what: str):
    """Integer targets must be -100 (ignored) or lie in [0, num_classes): clear error instead of a C++ index error."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        return
    bad = (labels != -100) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"`{name}` holds {labels[bad][0].item()}, but {what}: every value must be -100 (ignored) or lie in "
            f"[0, {num_classes - 1}]."
        )


def _activation_regularization(
    config: RNNConfig,
    hidden_states: torch.Tensor,
    dropped_states: torch.Tensor,
    mask: torch.Tensor | None,
    num_items: torch.Tensor | int,
    num_items_in_batch: torch.Tensor | int | None,
) -> torch.Tensor | None:
    """AR and TAR (Merity et al. 2017) of the last layer's outputs, as a loss term; None when both are off.

    hidden_states / dropped_states: [B, T, D*H] before / after `output_dropout`; mask: [B, T] real tokens or None.
    AR = alpha * mean(dropped ** 2) over real positions; TAR = beta * mean((h_t - h_(t-1)) ** 2) over adjacent real
    pairs. Under gradient accumulation (`num_items_in_batch`: the loss items of the whole accumulated batch, of which
    this micro-batch holds `num_items`), each micro-batch's means are weighted by its share of the items, so that
    the accumulated terms equal those of one large batch, like the loss itself.
    """
    alpha, beta = config.activation_regularization, config.temporal_activation_regularization
    if alpha == 0 and beta == 0:
        return None

    def masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:  # values [B, T', F]
        if weights is None:
            return values.mean()
        return (values * weights).sum() / (weights.sum() * values.shape[-1]).clamp(min=1.0)

    real = mask.unsqueeze(-1).to(hidden_states.dtype) if mask is not None else None  # [B, T, 1]
    term = hidden_states.new_zeros(())
    if alpha:
        term = term + alpha * masked_mean(dropped_states.pow(2), real)
    if beta and hidden_states.shape[1] > 1:
        pairs = real[:, 1:] * real[:, :-1] if real is not None else None  # both steps real
        term = term + beta * masked_mean((hidden_states[:, 1:] - hidden_states[:, :-1]).pow(2), pairs)
    if num_items_in_batch is not None:
        term = term * (num_items / num_items_in_batch)
    return term


def _pool(hidden_states: torch.Tensor, mask: torch.Tensor | None, mode: str, hidden_size: int) -> torch.Tensor:
    """[B, T, D*H] -> [B, D*H], ignoring padded positions.

    "last": the forward direction at each row's last real token and, when bidirectional, the backward direction at
    its first real token (each direction's summary of the whole sequence).
    """
    batch_size, seq_len, width = hidden_states.shape
    if mode == "last":
        if mask is None:
            last = torch.full((batch_size,), seq_len - 1, device=hidden_states.device)
            first = torch.zeros(batch_size, dtype=torch.long, device=hidden_states.device)
        else:
            positions = torch.arange(seq_len, device=hidden_states.device).expand(batch_size, -1)
            last = torch.where(mask, positions, -1).max(dim=1).values.clamp(min=0)
            first = torch.where(mask, positions, seq_len).min(dim=1).values.clamp(max=seq_len - 1)
        rows = torch.arange(batch_size, device=hidden_states.device)
        forward = hidden_states[rows, last, :hidden_size]
        if width == hidden_size:
            return forward
        return torch.cat([forward, hidden_states[rows, first, hidden_size:]], dim=-1)
    if mask is None:
        return hidden_states.mean(dim=1) if mode == "mean" else hidden_states.max(dim=1).values
    weights = mask.unsqueeze(-1).to(hidden_states.dtype)  # [B, T, 1]
    if mode == "mean":
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    pooled = hidden_states.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
    return torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled)  # rows without real tokens -> 0


class RNNForSequenceClassification(RNNPreTrainedModel):
    """`RNNModel`, padding-aware pooling (`config.classifier_pooling`) and a linear classifier.

    Single-label, multi-label and regression through `config.problem_type` (inferred from the labels when unset).
    """

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RNNModel(config)
        self.output_dropout = RNNDropout(config.output_dropout, config.locked_dropout)
        self.score = nn.Linear(config.hidden_size * config.num_directions, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        cache: RNNCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | RNNClassifierOutput:
        r"""
        labels (`torch.Tensor`, *optional*): [B] class ids (single-label), [B, num_labels] floats (multi-label), or
            [B] / [B, num_labels] floats (regression).

        Other arguments as in `RNNModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state  # [B, T, D*H]
        batch_size, seq_len = hidden_states.shape[:2]
        mask = _trailing_mask(attention_mask, batch_size, seq_len, has_cache=cache is not None)
        pooled = _pool(hidden_states, mask, self.config.classifier_pooling, self.config.hidden_size)  # [B, D*H]
        logits = self.score(self.output_dropout(pooled))  # [B, num_labels]

        loss = None
        if labels is not None:
            if labels.shape[0] != batch_size:
                raise ValueError(f"`labels` must have {batch_size} rows (one per sequence), got {list(labels.shape)}.")
            if self.config.num_labels > 1 and labels.dim() == 1:  # class ids (not regression or multi-label targets)
                _check_class_ids("labels", labels, self.config.num_labels, f"num_labels={self.config.num_labels}")
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config, **kwargs)
            num_items = kwargs.get("num_items_in_batch")
            if num_items is not None and self.config.problem_type in ("regression", "multi_label_classification"):
                # transformers' MSE/BCE losses take the micro-batch mean and ignore `num_items_in_batch`; rescale
                # to sum / items of the whole accumulated batch, as for the cross-entropy losses.
                loss = loss * (labels.numel() / num_items)
            if self.training:
                # dropout acts on the pooled vector here, so AR reads the per-token outputs before it
                regularization = _activation_regularization(
                    self.config, hidden_states, hidden_states, mask, batch_size, num_items
                )
                loss = loss + regularization if regularization is not None else loss

        if not return_dict:
            output = tuple(v for v in (logits, outputs.cache, outputs.hidden_states) if v is not None)
            return (loss,) + output if loss is not None else output
        return RNNClassifierOutput(loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states)


class RNNForTokenClassification(RNNPreTrainedModel):
    """`RNNModel` and a linear classifier on every token (tagging: NER, POS)."""

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RNNModel(config)
        self.output_dropout = RNNDropout(config.output_dropout, config.locked_dropout)
        self.score = nn.Linear(config.hidden_size * config.num_directions, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        cache: RNNCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | RNNClassifierOutput:
        r"""
        labels (`torch.LongTensor` [B, T], *optional*): a class id per token, -100 where no loss is wanted.

        Other arguments as in `RNNModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        dropped_states = self.output_dropout(outputs.last_hidden_state)
        logits = self.score(dropped_states)  # [B, T, num_labels]

        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(
                    f"`labels` must have shape {list(logits.shape[:2])} (one label per token), got {list(labels.shape)}."
                )
            _check_class_ids("labels", labels, self.config.num_labels, f"num_labels={self.config.num_labels}")
            loss = self.loss_function(logits=logits, labels=labels, config=self.config, **kwargs)
            if self.training:
                regularization = _activation_regularization(
                    self.config,
                    outputs.last_hidden_state,
                    dropped_states,
                    _trailing_mask(attention_mask, *labels.shape, has_cache=cache is not None),
                    (labels != -100).sum(),
                    kwargs.get("num_items_in_batch"),
                )
                loss = loss + regularization if regularization is not None else loss

        if not return_dict:
            output = tuple(v for v in (logits, outputs.cache, outputs.hidden_states) if v is not None)
            return (loss,) + output if loss is not None else output
        return RNNClassifierOutput(loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states)


__all__ = [
    "RNNCache",
    "RNNPreTrainedModel",
    "RNNModel",
    "RNNForCausalLM",
    "RNNForSequenceClassification",
    "RNNForTokenClassification",
]
