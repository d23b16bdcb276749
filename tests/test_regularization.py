"""AWD-LSTM's regularisers (Merity et al. 2017) as config fields: weight drop, locked dropout, word dropout,
per-layer hidden sizes, AR and TAR. Each acts in training only, adds no parameter, and leaves eval outputs and
saved weights those of a plain model."""

import pytest
import torch
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hf_rnn import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification, RNNModel
from hf_rnn.modeling_rnn import RNNDropout

from conftest import VOCAB_SIZE, random_ids, randomize_biases, tiny_config


AWD_FIELDS = dict(
    weight_drop=0.5,
    locked_dropout=True,
    word_dropout=0.1,
    embedding_dropout=0.4,
    hidden_dropout=0.3,
    output_dropout=0.4,
    activation_regularization=2,
    temporal_activation_regularization=1,
)


def plain_fields(config: RNNConfig) -> dict:
    """The config's fields with every regulariser off (the architecture unchanged)."""
    fields = config.to_dict()
    for name in AWD_FIELDS:
        fields[name] = False if name == "locked_dropout" else 0.0
    return {k: v for k, v in fields.items() if k in RNNConfig.__dataclass_fields__}


# ---------------------------------------------------------------------------------------------------------------------
# Weight drop
# ---------------------------------------------------------------------------------------------------------------------


class TestWeightDrop:
    def test_training_forward_uses_dropconnected_recurrent_weights(self, cell_type, bidirectional):
        """In training, a layer equals the plain module run on dropout(weight_hh) drawn from the same RNG state:
        one mask per forward for the hidden-to-hidden weights only, the input weights untouched."""
        model = randomize_biases(RNNModel(tiny_config(cell_type, bidirectional, weight_drop=0.5, num_hidden_layers=1)))
        layer = model.layers[0]
        layer.train()
        inputs = torch.randn(3, 6, 8)

        torch.manual_seed(7)
        outputs, _ = layer(inputs, None)

        reference = type(layer.rnn)(**_module_kwargs(layer.rnn))
        reference.load_state_dict(layer.rnn.state_dict())
        torch.manual_seed(7)
        with torch.no_grad():
            for name, param in reference.named_parameters():  # same order as the layer draws its masks
                if name.startswith("weight_hh"):
                    param.copy_(F.dropout(param, 0.5, training=True))
        expected, _ = reference(inputs)
        torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-6)

        plain, _ = layer.rnn(inputs)
        assert (outputs - plain).abs().max() > 1e-3  # the drop did change something

    def test_eval_uses_plain_weights_and_parameters_stay_plain(self, cell_type):
        model = randomize_biases(RNNModel(tiny_config(cell_type, weight_drop=0.5)))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        model(random_ids(2, 5))  # a training forward must not write the dropped weights into the parameters
        for key, value in model.state_dict().items():
            assert torch.equal(value, before[key]), key
        assert set(before) == set(RNNModel(tiny_config(cell_type)).state_dict())  # no extra weights

        model.eval()
        plain = RNNModel(tiny_config(cell_type))
        plain.load_state_dict(before)
        ids = random_ids(2, 5)
        assert torch.equal(model(ids).last_hidden_state, plain.eval()(ids).last_hidden_state)

    def test_gradient_reaches_only_kept_recurrent_weights(self):
        model = RNNModel(tiny_config("lstm", weight_drop=0.5, num_hidden_layers=1)).train()
        torch.manual_seed(3)
        model(random_ids(2, 6)).last_hidden_state.sum().backward()
        torch.manual_seed(3)
        weight = model.layers[0].rnn.weight_hh_l0
        mask = F.dropout(torch.ones_like(weight), 0.5, training=True) == 0  # the same draw as the forward's
        grad = weight.grad
        assert grad is not None and grad[~mask].abs().sum() > 0
        assert torch.equal(grad[mask], torch.zeros_like(grad[mask]))

    def test_masks_differ_between_forwards(self):
        model = RNNModel(tiny_config("gru", weight_drop=0.5)).train()
        ids = random_ids(2, 6)
        assert not torch.equal(model(ids).last_hidden_state, model(ids).last_hidden_state)


def _module_kwargs(module: torch.nn.RNNBase) -> dict:
    kwargs = dict(
        input_size=module.input_size, hidden_size=module.hidden_size, batch_first=True, bidirectional=module.bidirectional
    )
    if isinstance(module, torch.nn.RNN):
        kwargs["nonlinearity"] = module.nonlinearity
    return kwargs


# ---------------------------------------------------------------------------------------------------------------------
# Locked (variational) dropout and word dropout
# ---------------------------------------------------------------------------------------------------------------------


class TestLockedDropout:
    def test_one_mask_across_time_steps(self):
        dropout = RNNDropout(0.5, locked=True).train()
        out = dropout(torch.ones(4, 9, 16))  # [B, T, F]
        assert torch.equal(out, out[:, :1].expand_as(out))  # every step has row b's mask
        assert set(out.unique().tolist()) == {0.0, 2.0}
        assert not torch.equal(out[0], out[1])  # rows draw their own masks

    def test_standard_dropout_draws_per_step(self):
        out = RNNDropout(0.5, locked=False).train()(torch.ones(4, 9, 16))
        assert not torch.equal(out, out[:, :1].expand_as(out))

    def test_packed_sequence_gets_one_mask_per_row(self):
        """Between layers under padding, the dropout sees a PackedSequence: each row keeps one mask over its
        real steps."""
        lengths = torch.tensor([5, 2, 4])
        packed = pack_padded_sequence(torch.ones(3, 5, 6), lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(RNNDropout(0.5, locked=True).train()(packed), batch_first=True)
        for row, length in enumerate(lengths.tolist()):
            steps = out[row, :length]
            assert torch.equal(steps, steps[:1].expand_as(steps)), row
            assert torch.equal(out[row, length:], torch.zeros_like(out[row, length:]))

    def test_identity_in_eval(self):
        x = torch.randn(2, 3, 4)
        assert torch.equal(RNNDropout(0.5, locked=True).eval()(x), x)

    def test_model_embedding_dropout_is_locked(self):
        """With the same token at every step, the embeddings after locked dropout are the same at every step."""
        model = RNNModel(tiny_config(embedding_dropout=0.5, locked_dropout=True)).train()
        ids = torch.full((3, 7), 5)
        embedded = model(ids, output_hidden_states=True).hidden_states[0]  # [B, T, E] after embedding dropout
        assert torch.equal(embedded, embedded[:, :1].expand_as(embedded))
        assert (embedded == 0).any()


class TestWordDropout:
    def test_drops_whole_word_types(self):
        """Every occurrence of a word type is dropped together or kept (scaled by 1 / (1 - p))."""
        model = RNNModel(tiny_config(word_dropout=0.5, embedding_size=8)).train()
        ids = random_ids(6, 40, seed=1)
        torch.manual_seed(0)
        embedded = model(ids, output_hidden_states=True).hidden_states[0]
        plain = model.embed_tokens(ids)
        dropped_types, kept_types = set(), set()
        for token in ids.unique().tolist():
            rows = embedded[ids == token]
            if torch.equal(rows, torch.zeros_like(rows)):
                dropped_types.add(token)
            else:
                torch.testing.assert_close(rows, plain[ids == token] * 2.0)
                kept_types.add(token)
        assert dropped_types and kept_types

    def test_off_in_eval_and_for_inputs_embeds(self):
        model = RNNModel(tiny_config(word_dropout=0.5))
        ids = random_ids(2, 6)
        model.eval()
        assert torch.equal(model(ids, output_hidden_states=True).hidden_states[0], model.embed_tokens(ids))
        model.train()
        embeds = torch.randn(2, 6, 8)
        assert torch.equal(model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[0], embeds)


# ---------------------------------------------------------------------------------------------------------------------
# Per-layer hidden sizes
# ---------------------------------------------------------------------------------------------------------------------


class TestLayerHiddenSizes:
    def test_layers_have_their_sizes_and_continuation_is_exact(self, cell_type):
        config = tiny_config(cell_type, num_hidden_layers=3, layer_hidden_sizes=[12, 10, 8], tie_word_embeddings=True)
        model = randomize_biases(RNNForCausalLM(config)).eval()
        assert [layer.rnn.hidden_size for layer in model.model.layers] == [12, 10, 8]
        assert [layer.rnn.input_size for layer in model.model.layers] == [8, 12, 10]
        ids = random_ids(2, 9)
        full = model(ids, use_cache=True)
        shapes = [[list(s.shape) for s in full.cache.get_layer_state(i)] for i in range(3)]
        states = config.num_state_tensors
        assert shapes == [[[2, 1, size]] * states for size in (12, 10, 8)]
        first = model(ids[:, :4], use_cache=True)
        second = model(ids[:, 4:], cache=first.cache, use_cache=True)
        torch.testing.assert_close(second.logits, full.logits[:, 4:], rtol=0, atol=1e-5)

    def test_bidirectional_classifier(self, cell_type):
        config = tiny_config(cell_type, bidirectional=True, layer_hidden_sizes=[12, 8], num_labels=3)
        model = RNNForSequenceClassification(config).eval()
        assert model.model.layers[1].rnn.input_size == 24
        assert model(random_ids(2, 5)).logits.shape == (2, 3)

    def test_cache_from_a_model_with_other_sizes_is_refused(self):
        small = RNNForCausalLM(tiny_config(layer_hidden_sizes=[6, 8]))
        other = RNNForCausalLM(tiny_config())
        cache = small(random_ids(1, 3), use_cache=True).cache
        with pytest.raises(ValueError, match=r"`cache` layer 0 holds state tensors \[\[1, 1, 6\], \[1, 1, 6\]\].*\[1, 1, 8\]"):
            other(random_ids(1, 2), cache=cache)


# ---------------------------------------------------------------------------------------------------------------------
# AR and TAR
# ---------------------------------------------------------------------------------------------------------------------


def _lm_loss(model, ids, **kwargs):
    return model(ids, labels=ids, **kwargs).loss


class TestActivationRegularization:
    @pytest.mark.parametrize("alpha, beta", [(2.0, 0.0), (0.0, 1.0), (2.0, 1.0)])
    def test_causal_lm_adds_ar_and_tar_in_training(self, cell_type, alpha, beta):
        config = tiny_config(cell_type, activation_regularization=alpha, temporal_activation_regularization=beta)
        model = randomize_biases(RNNForCausalLM(config))
        plain = RNNForCausalLM(RNNConfig(**plain_fields(config)))
        plain.load_state_dict(model.state_dict())
        ids = random_ids(3, 7)
        model.train()
        plain.train()  # no dropout configured: training and eval forwards agree except for AR/TAR
        hidden = plain.model(ids).last_hidden_state  # [B, T, H]
        expected = plain(ids, labels=ids).loss
        expected = expected + alpha * hidden.pow(2).mean() + beta * (hidden[:, 1:] - hidden[:, :-1]).pow(2).mean()
        torch.testing.assert_close(_lm_loss(model, ids), expected, rtol=1e-6, atol=1e-6)

        model.eval()
        plain.eval()
        torch.testing.assert_close(_lm_loss(model, ids), plain(ids, labels=ids).loss, rtol=0, atol=0)

    def test_ar_reads_the_dropped_outputs(self):
        """AR penalises the outputs after output_dropout (AWD-LSTM's dropped_rnn_hs), TAR those before."""
        config = tiny_config(output_dropout=0.5, activation_regularization=3.0)
        model = RNNForCausalLM(config).train()
        ids = random_ids(2, 6)
        hidden = model.model(ids).last_hidden_state
        torch.manual_seed(11)
        dropped = F.dropout(hidden, 0.5, training=True)
        cross_entropy = model.loss_function(
            logits=model.lm_head(dropped).float(), labels=ids, vocab_size=config.vocab_size
        )
        torch.manual_seed(11)
        loss = _lm_loss(model, ids)
        torch.testing.assert_close(loss, cross_entropy + 3.0 * dropped.pow(2).mean(), rtol=1e-6, atol=1e-6)

    def test_padding_is_left_out(self):
        """Left-padded rows give the same AR/TAR as the rows alone (the real tokens only)."""
        config = tiny_config(activation_regularization=2.0, temporal_activation_regularization=1.0)
        model = randomize_biases(RNNForCausalLM(config)).train()
        ids = random_ids(1, 6)
        padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
        mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], dim=1)
        labels = padded.masked_fill(mask == 0, -100)
        labels[:, 3] = -100  # the first real token has no prediction in the row alone either
        loss = model(padded, attention_mask=mask, labels=labels).loss
        torch.testing.assert_close(loss, _lm_loss(model, ids), rtol=1e-6, atol=1e-6)

    def test_gradient_accumulation_equals_one_batch(self):
        """Two micro-batches with Trainer's num_items_in_batch add up to the loss of the whole batch (TBPTT rows of
        one length, as the stateful recipe trains)."""
        config = tiny_config(activation_regularization=2.0, temporal_activation_regularization=1.0)
        model = randomize_biases(RNNForCausalLM(config)).train()
        ids, targets = random_ids(4, 6, seed=1), random_ids(4, 6, seed=2)
        whole = model(ids, shift_labels=targets).loss
        items = torch.tensor(targets.numel())
        parts = sum(
            model(ids[rows], shift_labels=targets[rows], num_items_in_batch=items).loss for rows in (slice(0, 2), slice(2, 4))
        )
        torch.testing.assert_close(parts, whole, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("head", [RNNForSequenceClassification, RNNForTokenClassification])
    def test_classification_heads(self, head):
        config = tiny_config(activation_regularization=2.0, temporal_activation_regularization=1.0, num_labels=3)
        model = randomize_biases(head(config))
        plain = head(RNNConfig(**plain_fields(config)))
        plain.load_state_dict(model.state_dict())
        ids = random_ids(2, 5)
        labels = torch.tensor([0, 2]) if head is RNNForSequenceClassification else random_ids(2, 5) % 3
        model.train()
        hidden = plain.model(ids).last_hidden_state
        expected = plain(ids, labels=labels).loss + 2.0 * hidden.pow(2).mean()
        expected = expected + (hidden[:, 1:] - hidden[:, :-1]).pow(2).mean()
        torch.testing.assert_close(model(ids, labels=labels).loss, expected, rtol=1e-6, atol=1e-6)
        model.eval()
        assert torch.equal(model(ids, labels=labels).loss, plain.eval()(ids, labels=labels).loss)


# ---------------------------------------------------------------------------------------------------------------------
# A model trained with every regulariser saves and reloads plain
# ---------------------------------------------------------------------------------------------------------------------


def test_trained_with_every_regularizer_reloads_with_identical_eval_outputs(tmp_path, cell_type):
    config = tiny_config(cell_type, num_hidden_layers=3, layer_hidden_sizes=[16, 12, 8], tie_word_embeddings=True, **AWD_FIELDS)
    torch.manual_seed(0)
    model = RNNForCausalLM(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    ids = random_ids(4, 12)
    losses = []
    for _ in range(5):
        loss = _lm_loss(model.train(), ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))

    model.eval().save_pretrained(tmp_path)
    loaded = RNNForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.weight_drop == 0.5 and loaded.config.layer_hidden_sizes == [16, 12, 8]
    test_ids = random_ids(2, 9, seed=5)
    with torch.no_grad():
        expected = model(test_ids).logits
        assert torch.equal(loaded(test_ids).logits, expected)
        # the saved weights are plain: a model without any regulariser gives the same eval outputs
        plain = RNNForCausalLM.from_pretrained(tmp_path, **{k: v for k, v in plain_fields(config).items() if k in AWD_FIELDS})
        assert plain.config.weight_drop == 0.0
        assert torch.equal(plain.eval()(test_ids).logits, expected)
        tokens = loaded.generate(test_ids[:1], max_new_tokens=5, do_sample=False)
        assert torch.equal(tokens, model.generate(test_ids[:1], max_new_tokens=5, do_sample=False))
    assert VOCAB_SIZE == config.vocab_size
