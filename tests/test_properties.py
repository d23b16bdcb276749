"""Property-based tests (issue 6): invariants that must hold for every config and input shape hypothesis draws.

Each property draws a config (cell type, direction, 1-3 layers, sizes 1-12, dropouts — inactive in eval mode)
and a batch (1-4 rows, 1-12 steps, a random 0/1 mask that may hold all-padding rows and holes). Examples are
bounded and derandomized so that CI is fast and reproducible.
"""

import tempfile

import torch
from conftest import CELL_TYPES, random_ids, randomize_biases, tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_rnn import (
    RNNCache,
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
)

ATOL = 1e-5

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def configs(draw, bidirectional=None) -> RNNConfig:
    hidden_size = draw(st.integers(1, 12))
    tie = draw(st.booleans())
    embedding_size = hidden_size if tie else draw(st.integers(1, 12))
    dropout = st.sampled_from([0.0, 0.1, 0.5])
    return tiny_config(
        draw(st.sampled_from(CELL_TYPES)),
        draw(st.booleans()) if bidirectional is None else bidirectional,
        num_hidden_layers=draw(st.integers(1, 3)),
        hidden_size=hidden_size,
        embedding_size=embedding_size,
        embedding_dropout=draw(dropout),
        hidden_dropout=draw(dropout),
        output_dropout=draw(dropout),
    )


@st.composite
def batches(draw, max_len: int = 12):
    """(ids [B, T], mask [B, T]): random 0/1 rows, forced to include all-ones, all-zeros and holes sometimes."""
    batch_size = draw(st.integers(1, 4))
    seq_len = draw(st.integers(1, max_len))
    row = st.one_of(
        st.just([1] * seq_len),  # no padding
        st.just([0] * seq_len),  # all padding
        st.lists(st.integers(0, 1), min_size=seq_len, max_size=seq_len),  # left/right padding, holes
    )
    mask = torch.tensor(draw(st.lists(row, min_size=batch_size, max_size=batch_size)), dtype=torch.long)
    seed = draw(st.integers(0, 2**16))
    return random_ids(batch_size, seq_len, seed=seed), mask


def build(model_class, config: RNNConfig, seed: int):
    torch.manual_seed(seed)
    model = model_class(config)
    randomize_biases(model, seed=seed)
    return model.eval()


def real_tokens(ids, mask, row):
    return ids[row][mask[row].bool()].unsqueeze(0)


def assert_close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(config=configs(), batch=batches(), seed=st.integers(0, 1000), pooling=st.sampled_from(["last", "mean", "max"]))
def test_forward_never_crashes_and_is_finite(config, batch, seed, pooling):
    ids, mask = batch
    heads = [RNNModel, RNNForTokenClassification, RNNForSequenceClassification]
    if not config.bidirectional:
        heads.append(RNNForCausalLM)
    config.classifier_pooling = pooling
    config.num_labels = 3
    with torch.no_grad():
        for head in heads:
            model = build(head, config, seed)
            for attention_mask in (mask, None):
                out = model(ids, attention_mask=attention_mask, use_cache=True, output_hidden_states=True)
                main = out.last_hidden_state if head is RNNModel else out.logits
                assert torch.isfinite(main).all(), head.__name__
                assert all(torch.isfinite(h).all() for h in out.hidden_states)
                for i in range(config.num_hidden_layers):
                    state = out.cache.get_layer_state(i)
                    assert len(state) == config.num_state_tensors
                    for s in state:
                        assert s.shape == (ids.shape[0], config.num_directions, config.hidden_size)
                        assert torch.isfinite(s).all()


@PROPERTY_SETTINGS
@given(config=configs(), batch=batches(), seed=st.integers(0, 1000))
def test_padding_invariant(config, batch, seed):
    """Every row's real tokens give the same outputs and final state as that row alone; pads give zeros."""
    ids, mask = batch
    model = build(RNNModel, config, seed)
    with torch.no_grad():
        out = model(ids, attention_mask=mask, use_cache=True)
        for row in range(ids.shape[0]):
            real = mask[row].bool()
            padded_out = out.last_hidden_state[row][~real]
            assert (padded_out == 0).all()
            row_state = [out.cache.get_layer_state(i) for i in range(config.num_hidden_layers)]
            if not real.any():
                # no real token: the state stays at its initial value (zeros)
                for state in row_state:
                    for s in state:
                        assert (s[row] == 0).all()
                continue
            alone = model(real_tokens(ids, mask, row), use_cache=True)
            assert_close(out.last_hidden_state[row][real], alone.last_hidden_state[0])
            for i, state in enumerate(row_state):
                for s, s_alone in zip(state, alone.cache.get_layer_state(i)):
                    assert_close(s[row], s_alone[0])


@PROPERTY_SETTINGS
@given(config=configs(), batch=batches(), seed=st.integers(0, 1000))
def test_save_load_reproduces_outputs(config, batch, seed):
    ids, mask = batch
    model_class = RNNForTokenClassification if config.bidirectional else RNNForCausalLM
    model = build(model_class, config, seed)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, use_cache=True)
    # a fresh folder per example: hypothesis reuses function-scoped fixtures such as tmp_path across examples
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        loaded = model_class.from_pretrained(folder).eval()
    assert loaded.config.cell_type == config.cell_type and loaded.config.hidden_size == config.hidden_size
    with torch.no_grad():
        actual = loaded(ids, attention_mask=mask, use_cache=True)
    torch.testing.assert_close(actual.logits, expected.logits, atol=0, rtol=0)
    for i in range(config.num_hidden_layers):
        for a, e in zip(actual.cache.get_layer_state(i), expected.cache.get_layer_state(i)):
            torch.testing.assert_close(a, e, atol=0, rtol=0)


@PROPERTY_SETTINGS
@given(config=configs(bidirectional=False), batch=batches(), seed=st.integers(0, 1000), data=st.data())
def test_chunked_continuation_equals_one_shot(config, batch, seed, data):
    """model(chunk2, cache=state after chunk1) == model(chunk1 + chunk2), for a drawn split and any padding."""
    ids, mask = batch
    seq_len = ids.shape[1]
    split = data.draw(st.integers(1, max(seq_len - 1, 1)), label="split")
    if seq_len == 1:
        split = 1
    model = build(RNNModel, config, seed)
    with torch.no_grad():
        one_shot = model(ids, attention_mask=mask, use_cache=True)
        first = model(ids[:, :split], attention_mask=mask[:, :split], use_cache=True)
        outputs = [first.last_hidden_state]
        cache = first.cache
        if split < seq_len:
            # the mask covers the past too (as generate() passes it): only its last columns matter
            second = model(ids[:, split:], attention_mask=mask, cache=cache, use_cache=True)
            assert isinstance(second.cache, RNNCache)
            outputs.append(second.last_hidden_state)
            cache = second.cache
    assert_close(torch.cat(outputs, dim=1), one_shot.last_hidden_state)
    for i in range(config.num_hidden_layers):
        for a, e in zip(cache.get_layer_state(i), one_shot.cache.get_layer_state(i)):
            assert_close(a, e)
    assert cache.get_seq_length() == seq_len
