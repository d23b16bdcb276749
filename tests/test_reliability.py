"""Bad input gets a clear error: label maps, non-finite embeddings, masks, label ids, and broken files.

Complements the bad-input tests of test_modeling.py and test_configuration.py (which cover sizes, cell types,
token ids, shapes and caches): each case checks the exception type and that the message names the argument or
file and what was expected.
"""

import json
import re

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from conftest import VOCAB_SIZE, random_ids, tiny_config, tiny_tokenizer
from hf_rnn import (
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
    check_tokenizer_fits,
)


def build(model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(**overrides)).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Label maps that disagree with num_labels (transformers only warns, then silently replaces the names)
# ---------------------------------------------------------------------------------------------------------------------


class TestLabelMaps:
    def test_id2label_shorter_than_num_labels(self):
        with pytest.raises(ValueError, match=re.escape("`id2label` has 2 labels but `num_labels=3`")):
            RNNConfig(num_labels=3, id2label={0: "a", 1: "b"})

    def test_label2id_longer_than_num_labels(self):
        with pytest.raises(ValueError, match=re.escape("`label2id` has 3 labels but `num_labels=2`")):
            RNNConfig(num_labels=2, label2id={"a": 0, "b": 1, "c": 2})

    def test_label2id_without_id2label(self):
        with pytest.raises(ValueError, match=r"`label2id` .* needs `id2label`"):
            RNNConfig(label2id={"a": 0, "b": 1, "c": 2})

    def test_id2label_keys_not_contiguous(self):
        with pytest.raises(ValueError, match=re.escape("`id2label` keys must be the label ids 0..2")):
            RNNConfig(id2label={0: "a", 1: "b", 5: "c"})

    def test_consistent_maps_are_accepted(self):
        config = RNNConfig(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
        assert config.num_labels == 3 and config.id2label[2] == "c"

    def test_from_pretrained_with_other_num_labels_reheads(self, tmp_path):
        """Loading a checkpoint with another `num_labels` (fine-tuning a new head) stays allowed."""
        tiny_config(id2label={0: "neg", 1: "pos"}).save_pretrained(tmp_path)
        config = RNNConfig.from_pretrained(tmp_path, num_labels=5)
        assert config.num_labels == 5
        assert RNNConfig.from_pretrained(tmp_path, num_labels=2).id2label == {0: "neg", 1: "pos"}
        assert RNNConfig.from_pretrained(tmp_path).id2label == {0: "neg", 1: "pos"}


# ---------------------------------------------------------------------------------------------------------------------
# Forward: non-finite embeddings, non-binary masks, label ids out of range
# ---------------------------------------------------------------------------------------------------------------------


class TestForwardInputs:
    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    @pytest.mark.parametrize("model_class", [RNNModel, RNNForCausalLM, RNNForSequenceClassification])
    def test_non_finite_inputs_embeds(self, model_class, value):
        embeds = torch.randn(2, 4, 8)
        embeds[1, 2, 3] = value
        with pytest.raises(ValueError, match=re.escape("`inputs_embeds` holds NaN or infinite values")):
            build(model_class)(inputs_embeds=embeds)

    @pytest.mark.parametrize("bad", [2, -1, 0.5])
    @pytest.mark.parametrize("model_class", [RNNModel, RNNForCausalLM, RNNForTokenClassification])
    def test_attention_mask_not_binary(self, model_class, bad):
        mask = torch.ones(2, 4, dtype=torch.float if isinstance(bad, float) else torch.long)
        mask[0, 1] = bad
        with pytest.raises(ValueError, match=re.escape("`attention_mask` must hold only 1 (real token) and 0 (padding)")):
            build(model_class)(random_ids(2, 4), attention_mask=mask)

    def test_binary_float_and_bool_masks_are_accepted(self):
        mask = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
        model = build(RNNForCausalLM)
        with torch.no_grad():
            torch.testing.assert_close(
                model(random_ids(2, 4), attention_mask=mask).logits,
                model(random_ids(2, 4), attention_mask=mask.bool()).logits,
            )

    def test_generate_refuses_non_binary_mask(self):
        with pytest.raises(ValueError, match=re.escape("`attention_mask` must hold only 1")):
            build(RNNForCausalLM).generate(random_ids(1, 3), attention_mask=torch.tensor([[1, 3, 1]]), max_new_tokens=2)

    def test_causal_lm_label_out_of_vocabulary(self):
        labels = random_ids(2, 4)
        labels[1, 1] = VOCAB_SIZE
        with pytest.raises(ValueError, match=rf"`labels` holds {VOCAB_SIZE}, .* \[0, {VOCAB_SIZE - 1}\]"):
            build(RNNForCausalLM)(random_ids(2, 4), labels=labels)

    def test_causal_lm_ignore_index_is_accepted(self):
        labels = random_ids(2, 4)
        labels[:, 0] = -100
        assert torch.isfinite(build(RNNForCausalLM)(random_ids(2, 4), labels=labels).loss)

    def test_token_label_out_of_range(self):
        labels = torch.tensor([[0, 1, -100, 3]])
        with pytest.raises(ValueError, match=re.escape("`labels` holds 3, but num_labels=3: every value must be -100")):
            build(RNNForTokenClassification, num_labels=3)(random_ids(1, 4), labels=labels)

    def test_sequence_label_out_of_range(self):
        with pytest.raises(ValueError, match=re.escape("`labels` holds -2, but num_labels=2")):
            build(RNNForSequenceClassification)(random_ids(2, 4), labels=torch.tensor([1, -2]))


# ---------------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    build(RNNForCausalLM).save_pretrained(tmp_path)
    return tmp_path


class TestBrokenFiles:
    @pytest.mark.parametrize(
        "corrupt",
        [
            lambda data: data[: len(data) // 2],  # truncated download
            lambda data: data[:-1],  # one byte short
            lambda data: b"\x00" * 8 + data[8:],  # header length overwritten
            lambda data: b"<html>404 Not Found</html>",  # an error page saved as weights
            lambda data: b"",
        ],
        ids=["half", "one-byte-short", "header", "html", "empty"],
    )
    @pytest.mark.parametrize("loader", [RNNForCausalLM.from_pretrained, AutoModelForCausalLM.from_pretrained])
    def test_corrupted_safetensors(self, saved, loader, corrupt):
        """safetensors' own error names no file: hf_rnn re-raises an OSError naming the folder and the file."""
        weights = saved / "model.safetensors"
        weights.write_bytes(corrupt(weights.read_bytes()))
        with pytest.raises(OSError, match="model.safetensors is truncated or corrupted") as info:
            loader(saved)
        assert str(saved) in str(info.value)

    @pytest.mark.parametrize("loader", [AutoConfig.from_pretrained, AutoModelForCausalLM.from_pretrained])
    def test_config_json_that_is_not_json(self, saved, loader):
        """transformers raises OSError naming config.json (checked here so that an upgrade cannot hide it)."""
        config = saved / "config.json"
        config.write_text(config.read_text()[:-10])
        with pytest.raises(OSError, match=r"config\.json.* is not a valid JSON file"):
            loader(saved)

    def test_model_with_unknown_cell_type_in_json(self, saved):
        """The config tests load the config alone; the whole model fails the same way, naming the field."""
        config = saved / "config.json"
        config.write_text(json.dumps(dict(json.loads(config.read_text()), cell_type="transformer")))
        with pytest.raises(ValueError, match=r"`cell_type` must be one of .*'transformer'"):
            AutoModelForCausalLM.from_pretrained(saved)


class TestTokenizerFits:
    def test_tokenizer_larger_than_vocabulary(self, tmp_path):
        """from_pretrained loads both without a word; check_tokenizer_fits names both sizes."""
        build(RNNForCausalLM, vocab_size=20).save_pretrained(tmp_path)
        tiny_tokenizer().save_pretrained(tmp_path)
        model = AutoModelForCausalLM.from_pretrained(tmp_path)
        tokenizer = AutoTokenizer.from_pretrained(tmp_path)
        message = f"The tokenizer has {VOCAB_SIZE} tokens but the model's `vocab_size` is 20"
        with pytest.raises(ValueError, match=re.escape(message)):
            check_tokenizer_fits(model, tokenizer)
        with pytest.raises(ValueError, match=re.escape(message)):
            check_tokenizer_fits(model.config, tokenizer)

    @pytest.mark.parametrize("vocab_size", [VOCAB_SIZE, VOCAB_SIZE + 5])
    def test_tokenizer_that_fits(self, vocab_size):
        check_tokenizer_fits(tiny_config(vocab_size=vocab_size), tiny_tokenizer())

    def test_not_a_model(self):
        with pytest.raises(TypeError, match="`model_or_config` must be an hf_rnn model or RNNConfig"):
            check_tokenizer_fits(object(), tiny_tokenizer())
