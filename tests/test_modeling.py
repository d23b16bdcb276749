"""hf_rnn models: shapes, fused kernels against a torch reference, initialisation, exact padding, cached
continuation, pooling, losses, weight tying, checkpoint reuse across heads, input validation, tuple outputs.

Numeric tests run in float32 with biases randomised (`randomize_biases`): zero biases hide padding bugs, since an
LSTM/GRU with zero biases and a zero input keeps a zero state.
"""

import re

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from conftest import VOCAB_SIZE, random_ids, randomize_biases, tiny_config
from hf_rnn import (
    RNNCache,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
)


ATOL = 1e-5
HIDDEN = 8  # tiny_config's hidden_size and embedding_size
LAYERS = 2  # tiny_config's num_hidden_layers
TORCH_CLASSES = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}

# 0/1 masks of a [3, 6] batch. Row 0 is always unpadded; the last row keeps a single real token.
MASKS = {
    "right": [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]],
    "left": [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]],
    "holes": [[1, 1, 0, 0, 1, 1], [0, 1, 1, 0, 1, 0], [1, 0, 0, 0, 0, 1]],
}
POOLINGS = ["last", "mean", "max"]


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def build(model_class, cell_type="lstm", bidirectional=False, seed=0, **overrides):
    """A tiny model in eval mode with non-zero biases (deterministic for a given seed)."""
    torch.manual_seed(seed)
    model = model_class(tiny_config(cell_type, bidirectional, **overrides))
    randomize_biases(model, seed=seed)
    return model.eval()


def randomize_all(model, seed=0):
    """Overwrite every parameter with random values, so that any re-initialisation would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return model


def assert_close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def masked_batch(kind, seed=0):
    """ids [3, 6] and a mask of the given kind. Padded positions hold arbitrary tokens: they must not matter."""
    mask = torch.tensor(MASKS[kind])
    return random_ids(*mask.shape, seed=seed), mask


def real_tokens(ids, mask, row):
    """The real tokens of one row, in order, as a [1, n] batch."""
    return ids[row][mask[row].bool()].unsqueeze(0)


def layer_states(cache, layer, row=None):
    """The state tensors (h, and c for an LSTM) of one layer, [B, D, H] each, or [D, H] for one row."""
    state = cache.get_layer_state(layer)
    return tuple(s if row is None else s[row] for s in state)


def torch_reference(model: RNNModel) -> nn.Module:
    """A plain multi-layer torch nn.RNN/LSTM/GRU with the weights of the model's stack copied in."""
    config = model.config
    kwargs = {"nonlinearity": config.cell_type[4:]} if config.cell_type.startswith("rnn_") else {}
    reference = TORCH_CLASSES[config.cell_type](
        config.embedding_size,
        config.hidden_size,
        num_layers=config.num_hidden_layers,
        bidirectional=config.bidirectional,
        batch_first=True,
        **kwargs,
    )
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            for name, param in layer.rnn.named_parameters():
                getattr(reference, name.replace("_l0", f"_l{i}")).copy_(param)
    return reference.eval()


# ---------------------------------------------------------------------------------------------------------------------
# Outputs and cache layout
# ---------------------------------------------------------------------------------------------------------------------


class TestOutputs:
    def test_model_output_shapes(self, cell_type, bidirectional):
        """last_hidden_state [B, T, D*H]; hidden_states = embedding output + one per layer, last = last_hidden_state."""
        model = build(RNNModel, cell_type, bidirectional)
        directions = 2 if bidirectional else 1
        ids = random_ids(3, 5)
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
        assert out.last_hidden_state.shape == (3, 5, directions * HIDDEN)
        assert len(out.hidden_states) == 1 + LAYERS
        assert_close(out.hidden_states[0], model.embed_tokens(ids))
        for layer_output in out.hidden_states[1:]:
            assert layer_output.shape == (3, 5, directions * HIDDEN)
        assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
        assert not torch.equal(out.hidden_states[1], out.hidden_states[2])

    def test_cache_holds_batch_first_states(self, cell_type, bidirectional):
        """The cache holds, per layer, h (and c for an LSTM) as [B, D, H] tensors."""
        model = build(RNNModel, cell_type, bidirectional)
        with torch.no_grad():
            out = model(random_ids(3, 5), use_cache=True)
        assert isinstance(out.cache, RNNCache)
        assert len(out.cache.layers) == LAYERS
        directions = 2 if bidirectional else 1
        for layer in range(LAYERS):
            state = layer_states(out.cache, layer)
            assert len(state) == (2 if cell_type == "lstm" else 1)
            for tensor in state:
                assert tensor.shape == (3, directions, HIDDEN)
        assert out.cache.get_seq_length() == 5

    def test_cache_state_is_the_last_output(self, cell_type):
        """Unidirectional: h of the last layer equals the last time step of last_hidden_state."""
        model = build(RNNModel, cell_type)
        with torch.no_grad():
            out = model(random_ids(3, 5), use_cache=True)
        assert_close(layer_states(out.cache, LAYERS - 1)[0][:, 0], out.last_hidden_state[:, -1])

    def test_use_cache_false_returns_no_cache(self, cell_type):
        model = build(RNNForCausalLM, cell_type)
        with torch.no_grad():
            out = model(random_ids(2, 4), use_cache=False)
        assert out.cache is None
        assert "cache" not in out

    def test_use_cache_defaults_to_config_and_off_in_training(self):
        """use_cache=None means config.use_cache in eval, and no cache while training."""
        model = build(RNNForCausalLM, "gru")
        ids = random_ids(2, 4)
        assert isinstance(model(ids).cache, RNNCache)
        model.config.use_cache = False
        assert model(ids).cache is None
        model.config.use_cache = True
        model.train()
        assert model(ids).cache is None

    def test_output_hidden_states_and_return_dict_default_to_config(self):
        """Arguments left as None fall back to the config, as pipelines and tools expect."""
        model = build(RNNForTokenClassification, "lstm")
        ids = random_ids(2, 4)
        with torch.no_grad():
            assert model(ids).hidden_states is None
            model.config.output_hidden_states = True
            assert len(model(ids).hidden_states) == 1 + LAYERS
            model.config.return_dict = False
            assert isinstance(model(ids), tuple)

    def test_inputs_embeds_equal_input_ids(self, cell_type, bidirectional):
        model = build(RNNModel, cell_type, bidirectional)
        ids = random_ids(2, 5)
        with torch.no_grad():
            assert_close(model(inputs_embeds=model.embed_tokens(ids)).last_hidden_state, model(ids).last_hidden_state)


def test_causal_lm_refuses_bidirectional():
    """A language model cannot read the future: RNNForCausalLM rejects a bidirectional config."""
    message = re.escape("RNNForCausalLM predicts the next token, so it cannot read the future: `bidirectional=True`")
    with pytest.raises(ValueError, match=message):
        RNNForCausalLM(tiny_config(bidirectional=True))
    with pytest.raises(ValueError, match=message):
        AutoModelForCausalLM.from_config(tiny_config(bidirectional=True))


# ---------------------------------------------------------------------------------------------------------------------
# Fused kernels and an independent torch reference
# ---------------------------------------------------------------------------------------------------------------------


class TestFusedKernels:
    def test_layers_are_fused_torch_modules(self, cell_type, bidirectional):
        """Every layer runs on torch's fused nn.RNN/nn.LSTM/nn.GRU, with the right non-linearity."""
        model = build(RNNModel, cell_type, bidirectional)
        assert len(model.layers) == LAYERS
        for i, layer in enumerate(model.layers):
            rnn = layer.rnn
            assert type(rnn) is TORCH_CLASSES[cell_type]
            if cell_type.startswith("rnn_"):
                assert rnn.nonlinearity == cell_type[4:]
            assert rnn.num_layers == 1
            assert rnn.bidirectional is bidirectional
            assert rnn.batch_first
            assert rnn.hidden_size == HIDDEN
            assert rnn.input_size == (HIDDEN if i == 0 else HIDDEN * (2 if bidirectional else 1))

    def test_heads_use_fused_kernels(self, cell_type):
        for model_class in (RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification):
            model = build(model_class, cell_type)
            for layer in model.model.layers:
                assert type(layer.rnn) is TORCH_CLASSES[cell_type]

    def test_model_matches_multilayer_torch_reference(self, cell_type, bidirectional):
        """Outputs and final states equal those of one multi-layer torch module with the same weights."""
        model = build(RNNModel, cell_type, bidirectional)
        reference = torch_reference(model)
        ids = random_ids(3, 7)
        with torch.no_grad():
            out = model(ids, use_cache=True)
            expected_output, expected_state = reference(model.embed_tokens(ids))
        expected_state = expected_state if cell_type == "lstm" else (expected_state,)
        assert_close(out.last_hidden_state, expected_output)
        directions = 2 if bidirectional else 1
        for layer in range(LAYERS):
            for tensor, expected in zip(layer_states(out.cache, layer), expected_state):
                for direction in range(directions):
                    assert_close(tensor[:, direction], expected[layer * directions + direction])

    def test_causal_lm_logits_match_torch_reference(self, cell_type):
        model = build(RNNForCausalLM, cell_type)
        reference = torch_reference(model.model)
        ids = random_ids(2, 6)
        with torch.no_grad():
            expected_output, _ = reference(model.model.embed_tokens(ids))
            assert_close(model(ids).logits, model.lm_head(expected_output))


# ---------------------------------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------------------------------


def assert_recurrent_init(rnn: nn.Module, cell_type: str):
    """Recurrent weights orthogonal per gate block; input weights Glorot-uniform per block; biases zero except an
    LSTM's forget gate, whose total bias (b_ih + b_hh) is 1."""
    hidden = rnn.hidden_size
    params = dict(rnn.named_parameters())
    for suffix in ("_l0", "_l0_reverse") if rnn.bidirectional else ("_l0",):
        weight_hh = params["weight_hh" + suffix]
        assert weight_hh.shape == (GATES[cell_type] * hidden, hidden)
        for block in weight_hh.detach().split(hidden, dim=0):
            assert_close(block @ block.T, torch.eye(hidden), atol=1e-5)
        weight_ih = params["weight_ih" + suffix].detach()
        bound = (6.0 / (weight_ih.shape[1] + hidden)) ** 0.5
        for block in weight_ih.split(hidden, dim=0):
            assert block.abs().max() <= bound
            assert block.abs().max() > 0.5 * bound  # not zero, not a narrower default
        total_bias = (params["bias_ih" + suffix] + params["bias_hh" + suffix]).detach()
        expected = torch.zeros_like(total_bias)
        if cell_type == "lstm":
            expected[hidden : 2 * hidden] = 1.0  # gate order i, f, g, o
        assert torch.equal(total_bias, expected)
        # the forget-gate 1 lives in one of the two bias vectors, all else is exactly zero
        for name in ("bias_ih", "bias_hh"):
            bias = params[name + suffix].detach()
            assert set(bias.unique().tolist()) <= {0.0, 1.0}


class TestInitialisation:
    def test_recurrent_layers(self, cell_type, bidirectional):
        torch.manual_seed(0)
        model = RNNModel(tiny_config(cell_type, bidirectional))
        for layer in model.layers:
            assert_recurrent_init(layer.rnn, cell_type)

    @pytest.mark.parametrize("model_class", [RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification])
    def test_every_head_initialises_its_recurrent_layers(self, cell_type, model_class):
        torch.manual_seed(0)
        model = model_class(tiny_config(cell_type))
        for layer in model.model.layers:
            assert_recurrent_init(layer.rnn, cell_type)

    def test_embedding_and_heads_use_initializer_range(self):
        """Embedding and heads: normal(0, initializer_range) weights, zero biases."""
        torch.manual_seed(0)
        lm = RNNForCausalLM(tiny_config("gru", initializer_range=0.1))
        for weight in (lm.model.embed_tokens.weight, lm.lm_head.weight):  # 296 samples each
            assert abs(weight.mean().item()) < 0.02
            assert 0.085 < weight.std().item() < 0.115
        assert torch.equal(lm.lm_head.bias, torch.zeros(VOCAB_SIZE))
        for model_class in (RNNForSequenceClassification, RNNForTokenClassification):
            model = model_class(tiny_config("gru", num_labels=3))
            assert torch.equal(model.score.bias, torch.zeros(3))

    @pytest.mark.parametrize(
        "model_class, bidirectional",
        [
            (RNNForCausalLM, False),
            (RNNModel, True),
            (RNNForSequenceClassification, True),
            (RNNForTokenClassification, False),
        ],
        ids=["causal-lm", "model-bidirectional", "sequence-classification-bidirectional", "token-classification"],
    )
    def test_from_pretrained_does_not_reinitialise_loaded_weights(
        self, tmp_path, cell_type, model_class, bidirectional
    ):
        """Every loaded parameter, recurrent ones included, equals the saved one (no orthogonal/forget-bias re-init)."""
        model = randomize_all(model_class(tiny_config(cell_type, bidirectional)), seed=1)
        model.save_pretrained(tmp_path)
        loaded = model_class.from_pretrained(tmp_path)
        saved_state = model.state_dict()
        loaded_state = loaded.state_dict()
        assert loaded_state.keys() == saved_state.keys()
        for name, tensor in saved_state.items():
            assert torch.equal(loaded_state[name], tensor), name

    def test_partial_checkpoint_initialises_only_the_missing_tensor(self, tmp_path, cell_type):
        """A recurrent module with one tensor missing from the checkpoint: that tensor is initialised (zero bias),
        its loaded neighbours in the same module (gate-sliced by the initialiser) keep their values."""
        model = randomize_all(RNNForCausalLM(tiny_config(cell_type)), seed=2)
        model.save_pretrained(tmp_path)
        weights = load_file(tmp_path / "model.safetensors")
        missing = "model.layers.0.rnn.bias_hh_l0"
        del weights[missing]
        save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
        loaded, info = RNNForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
        assert info["missing_keys"] == {missing}
        loaded_state = loaded.state_dict()
        assert torch.equal(loaded_state[missing], torch.zeros_like(loaded_state[missing]))
        for name, tensor in model.state_dict().items():
            if name != missing:
                assert torch.equal(loaded_state[name], tensor), name


# ---------------------------------------------------------------------------------------------------------------------
# Padding exactness: a padded row gives exactly the outputs of its real tokens run alone
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(params=list(MASKS))
def mask_kind(request):
    return request.param


class TestPadding:
    def test_causal_lm_logits(self, cell_type, mask_kind):
        model = build(RNNForCausalLM, cell_type)
        ids, mask = masked_batch(mask_kind)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).logits
            for row in range(ids.shape[0]):
                alone = model(real_tokens(ids, mask, row)).logits[0]
                assert_close(logits[row][mask[row].bool()], alone)

    def test_model_hidden_states(self, cell_type, bidirectional, mask_kind):
        """Every layer's output at real positions equals the row alone; padded positions are zero."""
        model = build(RNNModel, cell_type, bidirectional)
        ids, mask = masked_batch(mask_kind)
        real = mask.bool()
        with torch.no_grad():
            out = model(ids, attention_mask=mask, output_hidden_states=True)
            for row in range(ids.shape[0]):
                alone = model(real_tokens(ids, mask, row), output_hidden_states=True)
                for layer in range(1, LAYERS + 1):
                    assert_close(out.hidden_states[layer][row][real[row]], alone.hidden_states[layer][0])
        assert torch.all(out.last_hidden_state[~real] == 0)

    def test_token_classification_logits(self, cell_type, bidirectional, mask_kind):
        model = build(RNNForTokenClassification, cell_type, bidirectional, num_labels=5)
        ids, mask = masked_batch(mask_kind)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).logits
            for row in range(ids.shape[0]):
                assert_close(logits[row][mask[row].bool()], model(real_tokens(ids, mask, row)).logits[0])

    def test_final_state_equals_row_alone(self, cell_type, bidirectional, mask_kind):
        """The cache of a padded row holds the state after its own real tokens (both directions)."""
        model = build(RNNModel, cell_type, bidirectional)
        ids, mask = masked_batch(mask_kind)
        with torch.no_grad():
            cache = model(ids, attention_mask=mask, use_cache=True).cache
            for row in range(ids.shape[0]):
                alone = model(real_tokens(ids, mask, row), use_cache=True).cache
                for layer in range(LAYERS):
                    for tensor, expected in zip(layer_states(cache, layer, row), layer_states(alone, layer, 0)):
                        assert_close(tensor, expected)

    @pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.float32])
    def test_mask_dtypes_are_equivalent(self, dtype):
        model = build(RNNForCausalLM, "lstm")
        ids, mask = masked_batch("holes")
        with torch.no_grad():
            assert_close(model(ids, attention_mask=mask.to(dtype)).logits, model(ids, attention_mask=mask).logits)

    def test_all_ones_mask_equals_no_mask(self, cell_type):
        model = build(RNNForCausalLM, cell_type)
        ids = random_ids(2, 5)
        with torch.no_grad():
            assert_close(model(ids, attention_mask=torch.ones_like(ids)).logits, model(ids).logits)

    def test_all_padding_row_keeps_initial_state(self, cell_type, bidirectional):
        """A row without real tokens does not crash, outputs zeros and keeps the zero initial state."""
        model = build(RNNModel, cell_type, bidirectional)
        ids = random_ids(2, 4)
        mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0]])
        with torch.no_grad():
            out = model(ids, attention_mask=mask, use_cache=True)
            alone = model(real_tokens(ids, mask, 0), use_cache=True)
        assert torch.all(out.last_hidden_state[1] == 0)
        assert_close(out.last_hidden_state[0][mask[0].bool()], alone.last_hidden_state[0])
        for layer in range(LAYERS):
            for tensor, expected in zip(layer_states(out.cache, layer), layer_states(alone.cache, layer)):
                assert torch.all(tensor[1] == 0)
                assert_close(tensor[0], expected[0])

    def test_all_padding_row_keeps_cached_state(self, cell_type):
        """Continuing with a row that has no real token leaves that row's cached state untouched."""
        model = build(RNNForCausalLM, cell_type)
        with torch.no_grad():
            cache = model(random_ids(2, 3, seed=1)).cache
            before = [tuple(s.clone() for s in layer_states(cache, layer)) for layer in range(LAYERS)]
            mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # past + current; row 1 has only pads now
            out = model(random_ids(2, 2, seed=2), attention_mask=mask, cache=cache)
        assert torch.isfinite(out.logits).all()
        for layer in range(LAYERS):
            for tensor, old in zip(layer_states(out.cache, layer), before[layer]):
                assert torch.equal(tensor[1], old[1])
                assert not torch.allclose(tensor[0], old[0])

    @pytest.mark.parametrize("pooling", POOLINGS)
    def test_all_padding_row_in_classifiers(self, cell_type, pooling):
        """Classifier heads give finite logits for an all-padding row and exact ones for the other rows."""
        ids = random_ids(2, 4)
        mask = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 0]])
        for model_class in (RNNForSequenceClassification, RNNForTokenClassification):
            model = build(model_class, cell_type, True, classifier_pooling=pooling)
            with torch.no_grad():
                logits = model(ids, attention_mask=mask).logits
                alone = model(real_tokens(ids, mask, 0)).logits
            assert torch.isfinite(logits).all()
            if model_class is RNNForSequenceClassification:
                assert_close(logits[0], alone[0])
            else:
                assert_close(logits[0][mask[0].bool()], alone[0])


# ---------------------------------------------------------------------------------------------------------------------
# Continuation from a cache
# ---------------------------------------------------------------------------------------------------------------------


class TestContinuation:
    def test_two_chunks_equal_one_shot(self, cell_type):
        model = build(RNNForCausalLM, cell_type)
        ids = random_ids(2, 7)
        with torch.no_grad():
            full = model(ids)
            first = model(ids[:, :4])
            second = model(ids[:, 4:], cache=first.cache)
        assert_close(second.logits, full.logits[:, 4:])
        assert_close(first.logits, full.logits[:, :4])
        assert second.cache.get_seq_length() == 7
        for layer in range(LAYERS):
            for tensor, expected in zip(layer_states(second.cache, layer), layer_states(full.cache, layer)):
                assert_close(tensor, expected)

    def test_three_chunk_stream_equals_one_shot(self, cell_type):
        model = build(RNNForCausalLM, cell_type)
        ids = random_ids(2, 8)
        with torch.no_grad():
            full = model(ids).logits
            cache, pieces = None, []
            for start, end in ((0, 3), (3, 4), (4, 8)):
                out = model(ids[:, start:end], cache=cache)
                cache = out.cache
                pieces.append(out.logits)
        assert_close(torch.cat(pieces, dim=1), full)

    def test_continuation_after_left_padded_chunk(self, cell_type):
        """Chunk 1 left-padded; chunk 2's mask covers past and current tokens (transformers' convention)."""
        model = build(RNNForCausalLM, cell_type)
        chunk1 = random_ids(3, 5, seed=1)
        mask1 = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
        chunk2 = random_ids(3, 3, seed=2)
        mask2 = torch.cat([mask1, torch.ones(3, 3, dtype=torch.long)], dim=1)
        with torch.no_grad():
            first = model(chunk1, attention_mask=mask1)
            second = model(chunk2, attention_mask=mask2, cache=first.cache)
            for row in range(3):
                alone = model(torch.cat([real_tokens(chunk1, mask1, row), chunk2[row : row + 1]], dim=1)).logits[0]
                assert_close(second.logits[row], alone[-3:])

    def test_continuation_with_padding_in_both_chunks(self, cell_type):
        """A later turn that is itself left-padded (mask like `1 1 1 0 0 1 1`): a first forward plus a cached
        continuation equals one forward over the whole masked sequence, and each row's real tokens alone."""
        model = build(RNNForCausalLM, cell_type)
        ids = random_ids(3, 7, seed=3)
        mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1], [0, 1, 1, 1, 0, 1, 1], [0, 0, 1, 0, 0, 0, 1]])
        real = mask.bool()
        with torch.no_grad():
            one_shot = model(ids, attention_mask=mask)
            first = model(ids[:, :3], attention_mask=mask[:, :3])
            second = model(ids[:, 3:], attention_mask=mask, cache=first.cache)
            continued = torch.cat([first.logits, second.logits], dim=1)
            for row in range(3):
                alone = model(real_tokens(ids, mask, row)).logits[0]
                assert_close(continued[row][real[row]], alone)
                assert_close(one_shot.logits[row][real[row]], alone)
        for layer in range(LAYERS):
            for tensor, expected in zip(layer_states(second.cache, layer), layer_states(one_shot.cache, layer)):
                assert_close(tensor, expected)

    def test_cached_continuation_matches_torch_reference(self, cell_type):
        """The cache passed back becomes the initial state: same as a torch module started from that state."""
        model = build(RNNForCausalLM, cell_type)
        reference = torch_reference(model.model)
        ids = random_ids(2, 6)
        with torch.no_grad():
            first = model(ids[:, :2])
            state = [layer_states(first.cache, layer) for layer in range(LAYERS)]
            # [B, 1, H] per layer -> torch's [layers, B, H]
            initial = tuple(torch.cat([s[j].transpose(0, 1) for s in state]) for j in range(len(state[0])))
            initial = initial if cell_type == "lstm" else initial[0]
            second = model(ids[:, 2:], cache=first.cache)
            expected_output, _ = reference(model.model.embed_tokens(ids[:, 2:]), initial)
        assert_close(second.logits, model.lm_head(expected_output))


# ---------------------------------------------------------------------------------------------------------------------
# Sequence classification
# ---------------------------------------------------------------------------------------------------------------------


def manual_pool(features: torch.Tensor, pooling: str, bidirectional: bool) -> torch.Tensor:
    """[n, D*H] outputs of one row's real tokens -> [D*H]. "last": forward direction at the last token and backward
    direction at the first token."""
    if pooling == "mean":
        return features.mean(dim=0)
    if pooling == "max":
        return features.max(dim=0).values
    if not bidirectional:
        return features[-1]
    return torch.cat([features[-1, :HIDDEN], features[0, HIDDEN:]])


class TestSequenceClassification:
    @pytest.mark.parametrize("pooling", POOLINGS)
    def test_pooling_is_padding_invariant(self, cell_type, bidirectional, pooling, mask_kind):
        model = build(RNNForSequenceClassification, cell_type, bidirectional, classifier_pooling=pooling, num_labels=3)
        ids, mask = masked_batch(mask_kind)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).logits
            for row in range(ids.shape[0]):
                assert_close(logits[row], model(real_tokens(ids, mask, row)).logits[0])

    @pytest.mark.parametrize("pooling", POOLINGS)
    def test_pooling_matches_manual_computation(self, cell_type, bidirectional, pooling):
        """Logits = score(pool(RNNModel outputs of the real tokens)), computed by hand, padded and unpadded."""
        model = build(RNNForSequenceClassification, cell_type, bidirectional, classifier_pooling=pooling, num_labels=3)
        ids, mask = masked_batch("left")
        with torch.no_grad():
            padded = model(ids, attention_mask=mask).logits
            unpadded = model(ids).logits
            full_features = model.model(ids).last_hidden_state
            for row in range(ids.shape[0]):
                features = model.model(real_tokens(ids, mask, row)).last_hidden_state[0]
                assert_close(padded[row], model.score(manual_pool(features, pooling, bidirectional)))
                assert_close(unpadded[row], model.score(manual_pool(full_features[row], pooling, bidirectional)))

    def test_last_pooling_reads_both_ends_when_bidirectional(self, cell_type):
        """Bidirectional "last" differs from taking both directions at the last token (a common bug)."""
        model = build(RNNForSequenceClassification, cell_type, True, classifier_pooling="last", num_labels=3)
        ids = random_ids(2, 5)
        with torch.no_grad():
            features = model.model(ids).last_hidden_state
            logits = model(ids).logits
        assert_close(logits, model.score(torch.cat([features[:, -1, :HIDDEN], features[:, 0, HIDDEN:]], dim=-1)))
        assert not torch.allclose(logits, model.score(features[:, -1]), atol=1e-3)

    @pytest.mark.parametrize("set_problem_type", [True, False], ids=["explicit", "inferred"])
    @pytest.mark.parametrize(
        "problem_type", ["single_label_classification", "multi_label_classification", "regression"]
    )
    def test_loss_matches_torch_loss(self, cell_type, problem_type, set_problem_type):
        """Each problem type gives a finite loss equal to the torch loss computed by hand from the logits."""
        num_labels = 1 if problem_type == "regression" else 3
        model = build(
            RNNForSequenceClassification,
            cell_type,
            num_labels=num_labels,
            problem_type=problem_type if set_problem_type else None,
        )
        ids, mask = masked_batch("right")
        generator = torch.Generator().manual_seed(0)
        if problem_type == "single_label_classification":
            labels = torch.tensor([2, 0, 1])
        elif problem_type == "multi_label_classification":
            labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        else:
            labels = torch.randn(3, generator=generator)
        with torch.no_grad():
            out = model(ids, attention_mask=mask, labels=labels)
        if problem_type == "single_label_classification":
            expected = F.cross_entropy(out.logits, labels)
        elif problem_type == "multi_label_classification":
            expected = F.binary_cross_entropy_with_logits(out.logits, labels)
        else:
            assert out.logits.shape == (3, 1)
            expected = F.mse_loss(out.logits.squeeze(-1), labels)
        assert torch.isfinite(out.loss)
        assert_close(out.loss, expected)


# ---------------------------------------------------------------------------------------------------------------------
# Token classification and causal LM losses
# ---------------------------------------------------------------------------------------------------------------------


def test_token_classification_loss_ignores_minus_100(cell_type, bidirectional):
    model = build(RNNForTokenClassification, cell_type, bidirectional, num_labels=4)
    ids, mask = masked_batch("right")
    labels = torch.randint(0, 4, ids.shape, generator=torch.Generator().manual_seed(0))
    labels[~mask.bool()] = -100
    labels[0, 2] = -100
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=labels)
    expected = F.cross_entropy(out.logits.reshape(-1, 4), labels.reshape(-1), ignore_index=-100)
    assert torch.isfinite(out.loss)
    assert_close(out.loss, expected)


class TestCausalLM:
    def test_loss_is_shifted_cross_entropy(self, cell_type):
        """Labels are shifted inside: logits at t predict labels at t+1; -100 is ignored."""
        model = build(RNNForCausalLM, cell_type)
        ids, mask = masked_batch("right")
        labels = ids.masked_fill(~mask.bool(), -100)
        with torch.no_grad():
            out = model(ids, attention_mask=mask, labels=labels)
        expected = F.cross_entropy(
            out.logits[:, :-1].reshape(-1, VOCAB_SIZE), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        assert torch.isfinite(out.loss)
        assert_close(out.loss, expected)

    def test_shift_labels_are_not_shifted_again(self, cell_type):
        """shift_labels (targets already aligned, as in truncated BPTT) give cross-entropy at every position."""
        model = build(RNNForCausalLM, cell_type)
        ids = random_ids(2, 5)
        targets = random_ids(2, 5, seed=1)
        targets[1, 0] = -100
        with torch.no_grad():
            out = model(ids, shift_labels=targets)
        expected = F.cross_entropy(out.logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1), ignore_index=-100)
        assert_close(out.loss, expected)

    def test_logits_to_keep(self):
        """logits_to_keep=N gives the last N positions' logits; a loss then needs every position."""
        model = build(RNNForCausalLM, "gru")
        ids = random_ids(2, 5)
        with torch.no_grad():
            full = model(ids).logits
            last = model(ids, logits_to_keep=1).logits
        assert last.shape == (2, 1, VOCAB_SIZE)
        assert_close(last, full[:, -1:])
        with pytest.raises(ValueError, match="pass `logits_to_keep=0`"):
            model(ids, labels=ids, logits_to_keep=1)

    def test_untied_by_default(self):
        model = build(RNNForCausalLM, "lstm")
        assert model.lm_head.weight is not model.model.embed_tokens.weight

    def test_tied_weights_share_storage(self, cell_type):
        model = build(RNNForCausalLM, cell_type, tie_word_embeddings=True)
        assert model.lm_head.weight is model.model.embed_tokens.weight
        with torch.no_grad():
            model.model.embed_tokens.weight[3, 0] = 5.0
        assert model.lm_head.weight[3, 0].item() == 5.0

    def test_tied_weights_survive_save_and_load(self, tmp_path, cell_type):
        """The tied matrix is saved once in model.safetensors and is tied again after loading."""
        model = randomize_all(build(RNNForCausalLM, cell_type, tie_word_embeddings=True))
        assert model.lm_head.weight is model.model.embed_tokens.weight
        model.save_pretrained(tmp_path)
        with safe_open(str(tmp_path / "model.safetensors"), "pt") as file:
            keys = set(file.keys())
            assert torch.equal(file.get_tensor("model.embed_tokens.weight"), model.model.embed_tokens.weight)
        assert "lm_head.weight" not in keys
        for loader in (RNNForCausalLM.from_pretrained, AutoModelForCausalLM.from_pretrained):
            loaded = loader(tmp_path).eval()
            assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
            ids = random_ids(2, 5)
            with torch.no_grad():
                assert_close(loaded(ids).logits, model(ids).logits)

    @pytest.mark.parametrize(
        "head_class, auto_class",
        [
            (RNNForSequenceClassification, AutoModelForSequenceClassification),
            (RNNForTokenClassification, AutoModelForTokenClassification),
            (RNNModel, AutoModel),
        ],
        ids=["sequence-classification", "token-classification", "model"],
    )
    def test_checkpoint_loads_into_other_heads(self, tmp_path, cell_type, head_class, auto_class):
        """A causal-LM checkpoint gives another head the LM's backbone weights and a freshly initialised head."""
        lm = randomize_all(build(RNNForCausalLM, cell_type))
        lm.save_pretrained(tmp_path)
        for loaded, info in (
            head_class.from_pretrained(tmp_path, num_labels=3, output_loading_info=True),
            auto_class.from_pretrained(tmp_path, num_labels=3, output_loading_info=True),
        ):
            assert type(loaded) is head_class
            backbone = loaded if head_class is RNNModel else loaded.model
            loaded_state = backbone.state_dict()
            lm_state = lm.model.state_dict()
            assert loaded_state.keys() == lm_state.keys()
            for name, tensor in lm_state.items():
                assert torch.equal(loaded_state[name], tensor), name
            if head_class is not RNNModel:
                assert info["missing_keys"] == {"score.weight", "score.bias"}
                assert loaded.score.weight.shape == (3, HIDDEN)
                assert torch.equal(loaded.score.bias, torch.zeros(3))
                assert 0 < loaded.score.weight.abs().max() < 0.6  # normal(0, 0.1), not copied from anywhere

    @pytest.mark.parametrize("head_class", [RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification])
    def test_base_model_checkpoint_loads_into_heads(self, tmp_path, head_class):
        """An RNNModel checkpoint (no `model.` prefix) fills a head's backbone."""
        base = randomize_all(RNNModel(tiny_config("lstm")))
        base.save_pretrained(tmp_path)
        loaded = head_class.from_pretrained(tmp_path)
        loaded_state = loaded.model.state_dict()
        for name, tensor in base.state_dict().items():
            assert torch.equal(loaded_state[name], tensor), name


# ---------------------------------------------------------------------------------------------------------------------
# Training: dropout, gradients, loss normalisation under gradient accumulation
# ---------------------------------------------------------------------------------------------------------------------


class TestTraining:
    @pytest.mark.parametrize("field", ["embedding_dropout", "hidden_dropout", "output_dropout"])
    def test_dropout_is_active_only_in_training(self, cell_type, field):
        model = build(RNNForCausalLM, cell_type, **{field: 0.5})
        reference = build(RNNForCausalLM, cell_type)  # same seed: same weights, no dropout
        ids = random_ids(2, 5)
        with torch.no_grad():
            assert_close(model(ids).logits, reference(ids).logits)
            model.train()
            assert not torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-3)

    def test_hidden_dropout_skips_the_last_layer(self):
        """hidden_dropout acts between layers only: a one-layer model is unaffected by it."""
        model = build(RNNForCausalLM, "lstm", num_hidden_layers=1, hidden_dropout=0.5).train()
        reference = build(RNNForCausalLM, "lstm", num_hidden_layers=1)
        ids = random_ids(2, 5)
        with torch.no_grad():
            assert_close(model(ids).logits, reference(ids).logits)

    @pytest.mark.parametrize("model_class", [RNNForCausalLM, RNNForTokenClassification])
    def test_gradients_reach_every_parameter_through_padding(self, cell_type, model_class):
        bidirectional = model_class is RNNForTokenClassification
        model = build(model_class, cell_type, bidirectional).train()
        ids, mask = masked_batch("holes")
        labels = (ids % 2 if bidirectional else ids).masked_fill(~mask.bool(), -100)  # token classes: 2 labels
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        for name, param in model.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name

    @pytest.mark.parametrize(
        "task", ["causal-lm", "token", "single_label_classification", "multi_label_classification", "regression"]
    )
    def test_num_items_in_batch_normalises_the_summed_loss(self, task):
        """With Trainer's `num_items_in_batch` (gradient accumulation), every loss is sum / num_items, as for one
        large batch."""
        ids, mask = masked_batch("right")
        num_items = 17
        if task == "causal-lm":
            model = build(RNNForCausalLM, "gru")
            labels = ids.masked_fill(~mask.bool(), -100)
        elif task == "token":
            model = build(RNNForTokenClassification, "gru", num_labels=4)
            labels = (ids % 4).masked_fill(~mask.bool(), -100)
        else:
            num_labels = 1 if task == "regression" else 3
            model = build(RNNForSequenceClassification, "gru", num_labels=num_labels, problem_type=task)
            labels = {
                "single_label_classification": torch.tensor([2, 0, 1]),
                "multi_label_classification": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]),
                "regression": torch.tensor([0.5, -1.0, 2.0]),
            }[task]
        with torch.no_grad():
            out = model(ids, attention_mask=mask, labels=labels, num_items_in_batch=num_items)
        logits = out.logits
        if task == "causal-lm":
            summed = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB_SIZE), labels[:, 1:].reshape(-1), reduction="sum")
        elif task in ("token", "single_label_classification"):
            summed = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")
        elif task == "multi_label_classification":
            summed = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
        else:
            summed = F.mse_loss(logits.squeeze(-1), labels, reduction="sum")
        assert_close(out.loss, summed / num_items)


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------


class TestBadInput:
    @pytest.mark.parametrize("bad_id", [-1, VOCAB_SIZE, VOCAB_SIZE + 100])
    @pytest.mark.parametrize("model_class", [RNNModel, RNNForCausalLM, RNNForSequenceClassification])
    def test_token_id_out_of_range(self, model_class, bad_id):
        """The error names the largest allowed id (vocab_size - 1)."""
        model = build(model_class)
        ids = random_ids(2, 4)
        ids[1, 2] = bad_id
        with pytest.raises(ValueError, match=rf"ids must lie in \[0, {VOCAB_SIZE - 1}\]"):
            model(ids)

    def test_both_input_ids_and_inputs_embeds(self):
        model = build(RNNForCausalLM)
        ids = random_ids(2, 4)
        with pytest.raises(ValueError, match=re.escape("Pass exactly one of `input_ids` and `inputs_embeds`")):
            model(ids, inputs_embeds=model.model.embed_tokens(ids))

    def test_neither_input_ids_nor_inputs_embeds(self):
        with pytest.raises(ValueError, match=re.escape("Pass exactly one of `input_ids` and `inputs_embeds`")):
            build(RNNModel)(attention_mask=torch.ones(2, 4))

    def test_empty_sequence(self):
        model = build(RNNForCausalLM)
        with pytest.raises(ValueError, match=re.escape("`input_ids` is empty (sequence length 0)")):
            model(torch.zeros(2, 0, dtype=torch.long))
        with pytest.raises(ValueError, match=re.escape("`inputs_embeds` is empty (sequence length 0)")):
            model(inputs_embeds=torch.zeros(2, 0, HIDDEN))

    def test_input_ids_of_wrong_rank(self):
        with pytest.raises(ValueError, match=re.escape("`input_ids` must have shape [batch_size, sequence_length]")):
            build(RNNModel)(random_ids(1, 4)[0])

    def test_inputs_embeds_of_wrong_width(self):
        message = f"`inputs_embeds` must have shape [batch_size, sequence_length, {HIDDEN}]"
        with pytest.raises(ValueError, match=re.escape(message)):
            build(RNNModel)(inputs_embeds=torch.zeros(2, 4, HIDDEN + 1))

    @pytest.mark.parametrize(
        "mask_shape, message",
        [
            ((3, 7), "`attention_mask` has 7 columns but the input has 6 tokens"),
            ((3, 5), "`attention_mask` has 5 columns but the input has 6 tokens"),
            ((2, 6), "`attention_mask` must have shape [batch_size, sequence_length] = [3, 6], got [2, 6]"),
            ((6,), "`attention_mask` must have shape [batch_size, sequence_length] = [3, 6], got [6]"),
        ],
        ids=["too-long", "too-short", "wrong-batch", "one-dimensional"],
    )
    @pytest.mark.parametrize("model_class", [RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification])
    def test_attention_mask_of_wrong_shape(self, model_class, mask_shape, message):
        model = build(model_class)
        with pytest.raises(ValueError, match=re.escape(message)):
            model(random_ids(3, 6), attention_mask=torch.ones(mask_shape, dtype=torch.long))

    def test_causal_lm_labels_of_wrong_shape(self):
        with pytest.raises(ValueError, match=re.escape("`labels` must have shape [3, 6] like the input, got [3, 7]")):
            build(RNNForCausalLM)(random_ids(3, 6), labels=random_ids(3, 7))

    def test_token_classification_labels_of_wrong_shape(self):
        message = "`labels` must have shape [3, 6] (one label per token), got [3, 5]"
        with pytest.raises(ValueError, match=re.escape(message)):
            build(RNNForTokenClassification)(random_ids(3, 6), labels=torch.zeros(3, 5, dtype=torch.long))

    def test_sequence_classification_labels_of_wrong_shape(self):
        message = "`labels` must have 3 rows (one per sequence), got [4]"
        with pytest.raises(ValueError, match=re.escape(message)):
            build(RNNForSequenceClassification)(random_ids(3, 6), labels=torch.zeros(4, dtype=torch.long))

    @pytest.mark.parametrize(
        "other, message",
        [
            (
                {"hidden_size": 16},
                r"`cache` layer 0 holds state tensors .* but this model expects \d tensor\(s\) of shape \[2, 1, 8\]",
            ),
            ({"num_hidden_layers": 3}, r"`cache` holds 3 layers but this model has num_hidden_layers=2"),
            ({"num_hidden_layers": 1}, r"`cache` holds 1 layers but this model has num_hidden_layers=2"),
        ],
        ids=["hidden-size", "more-layers", "fewer-layers"],
    )
    def test_cache_from_another_model(self, cell_type, other, message):
        model = build(RNNForCausalLM, cell_type)
        other_model = build(RNNForCausalLM, cell_type, **other)
        with torch.no_grad():
            cache = other_model(random_ids(2, 3)).cache
        with pytest.raises(ValueError, match=message):
            model(random_ids(2, 2), cache=cache)

    def test_cache_from_another_cell_type(self):
        """An LSTM's (h, c) state does not fit a GRU, which expects one tensor."""
        with torch.no_grad():
            cache = build(RNNForCausalLM, "lstm")(random_ids(2, 3)).cache
        with pytest.raises(ValueError, match=re.escape("this model expects 1 tensor(s) of shape [2, 1, 8]")):
            build(RNNForCausalLM, "gru")(random_ids(2, 2), cache=cache)

    def test_cache_of_another_batch_size(self):
        model = build(RNNForCausalLM, "gru")
        with torch.no_grad():
            cache = model(random_ids(3, 3)).cache
        with pytest.raises(ValueError, match=re.escape("expects 1 tensor(s) of shape [2, 1, 8]")):
            model(random_ids(2, 2), cache=cache)

    def test_cache_that_is_not_an_rnn_cache(self):
        with pytest.raises(TypeError, match="`cache` must be an RNNCache"):
            build(RNNForCausalLM)(random_ids(2, 2), cache=(torch.zeros(2, 1, HIDDEN),))

    @pytest.mark.parametrize("model_class", [RNNModel, RNNForSequenceClassification, RNNForTokenClassification])
    def test_cache_passed_to_bidirectional_model(self, cell_type, model_class):
        model = build(model_class, cell_type, bidirectional=True)
        with torch.no_grad():
            cache = model(random_ids(2, 3), use_cache=True).cache
        with pytest.raises(ValueError, match=re.escape("A bidirectional model cannot continue from a `cache`")):
            model(random_ids(2, 2), cache=cache)


# ---------------------------------------------------------------------------------------------------------------------
# return_dict=False
# ---------------------------------------------------------------------------------------------------------------------


def assert_same_cache(cache, expected):
    assert isinstance(cache, RNNCache)
    for layer in range(LAYERS):
        for tensor, expected_tensor in zip(layer_states(cache, layer), layer_states(expected, layer)):
            assert torch.equal(tensor, expected_tensor)


class TestTupleOutputs:
    def test_model_tuple_order(self, bidirectional):
        """RNNModel: (last_hidden_state, cache, hidden_states), leaving out what is None."""
        model = build(RNNModel, "lstm", bidirectional)
        ids = random_ids(2, 4)
        with torch.no_grad():
            expected = model(ids, use_cache=True, output_hidden_states=True)
            full = model(ids, use_cache=True, output_hidden_states=True, return_dict=False)
            bare = model(ids, use_cache=False, return_dict=False)
        assert isinstance(full, tuple) and len(full) == 3
        assert torch.equal(full[0], expected.last_hidden_state)
        assert_same_cache(full[1], expected.cache)
        assert len(full[2]) == 1 + LAYERS
        for tensor, expected_tensor in zip(full[2], expected.hidden_states):
            assert torch.equal(tensor, expected_tensor)
        assert isinstance(bare, tuple) and len(bare) == 1
        assert torch.equal(bare[0], expected.last_hidden_state)

    @pytest.mark.parametrize("model_class", [RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification])
    def test_head_tuple_order(self, model_class):
        """Heads: (loss, logits, cache, hidden_states), leaving out what is None."""
        model = build(model_class, "gru")
        ids = random_ids(2, 4)
        labels = torch.tensor([1, 0]) if model_class is RNNForSequenceClassification else ids % 2
        with torch.no_grad():
            expected = model(ids, labels=labels, use_cache=True, output_hidden_states=True)
            full = model(ids, labels=labels, use_cache=True, output_hidden_states=True, return_dict=False)
            bare = model(ids, use_cache=False, return_dict=False)
        assert isinstance(full, tuple) and len(full) == 4
        assert torch.equal(full[0], expected.loss)
        assert torch.equal(full[1], expected.logits)
        assert_same_cache(full[2], expected.cache)
        for tensor, expected_tensor in zip(full[3], expected.hidden_states):
            assert torch.equal(tensor, expected_tensor)
        assert isinstance(bare, tuple) and len(bare) == 1
        assert torch.equal(bare[0], expected.logits)


# ---------------------------------------------------------------------------------------------------------------------
# Single-step path: one-token calls (generate()'s decode steps) run the fused cell kernels
# ---------------------------------------------------------------------------------------------------------------------


class TestSingleStepPath:
    @pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "carried-state"])
    def test_step_equals_sequence_module(self, cell_type, with_state):
        """A [B, 1, F] call takes the cell-kernel path and agrees with the sequence module (outputs, final state,
        gradients) to float rounding."""
        model = randomize_biases(RNNModel(tiny_config(cell_type, num_hidden_layers=1)))
        layer = model.layers[0]
        inputs = torch.randn(3, 1, 8, requires_grad=True)
        state = None
        if with_state:
            state = tuple(torch.randn(3, 1, 8) for _ in range(model.config.num_state_tensors))
        outputs, final = layer(inputs, state)

        hx = None if state is None else tuple(s.transpose(0, 1).contiguous() for s in state)
        expected, expected_final = layer.rnn(inputs, hx if cell_type == "lstm" or hx is None else hx[0])
        expected_final = expected_final if cell_type == "lstm" else (expected_final,)
        torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-6)
        for got, want in zip(final, expected_final):
            torch.testing.assert_close(got, want.transpose(0, 1), rtol=1e-5, atol=1e-6)

        grads = torch.autograd.grad(outputs.sum() + sum(s.sum() for s in final), [inputs, layer.rnn.weight_hh_l0])
        want_grads = torch.autograd.grad(
            expected.sum() + sum(s.sum() for s in expected_final), [inputs, layer.rnn.weight_hh_l0]
        )
        for got, want in zip(grads, want_grads):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

    def test_step_path_is_taken_for_one_token(self, monkeypatch):
        """Decode steps never call the sequence module (whose fixed cost per call is the decode bottleneck)."""
        model = RNNForCausalLM(tiny_config()).eval()
        cache = model(random_ids(1, 4), use_cache=True).cache
        calls = []
        for layer in model.model.layers:
            monkeypatch.setattr(layer.rnn, "forward", lambda *a, **k: calls.append(1))
        model(random_ids(1, 1), cache=cache, use_cache=True)
        assert calls == []
