"""RNNConfig: every field round-trips, and every invalid value is refused with a ValueError that says why."""

import json
import re

import pytest
from transformers import AutoConfig

from conftest import CELL_TYPES, VOCAB_SIZE, tiny_config
from hf_rnn import RNNConfig
from hf_rnn.configuration_rnn import AUTO_MAP


SIZE_FIELDS = ["vocab_size", "embedding_size", "hidden_size", "num_hidden_layers"]
DROPOUT_FIELDS = ["embedding_dropout", "hidden_dropout", "output_dropout", "word_dropout", "weight_drop"]
LOSS_WEIGHT_FIELDS = ["activation_regularization", "temporal_activation_regularization"]


def non_default_config(cell_type: str, bidirectional: bool) -> RNNConfig:
    """A config in which every hf_rnn field, and the label fields, differ from their defaults."""
    return RNNConfig(
        vocab_size=50,
        embedding_size=12,
        hidden_size=12,
        num_hidden_layers=3,
        cell_type=cell_type,
        bidirectional=bidirectional,
        embedding_dropout=0.1,
        hidden_dropout=0.2,
        output_dropout=0.3,
        layer_hidden_sizes=[20, 16, 12],
        locked_dropout=True,
        word_dropout=0.1,
        weight_drop=0.5,
        activation_regularization=2,
        temporal_activation_regularization=1.5,
        tie_word_embeddings=not bidirectional,  # tying is refused for bidirectional configs
        classifier_pooling="max" if bidirectional else "mean",
        initializer_range=0.05,
        use_cache=False,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=[1, 3],
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
        problem_type="multi_label_classification",
    )


def comparable(config: RNNConfig) -> dict:
    """to_dict without `_name_or_path`, which records where a loaded config came from."""
    fields = config.to_dict()
    fields.pop("_name_or_path", None)
    return fields


EXPECTED_FIELDS = {
    "vocab_size": 50,
    "embedding_size": 12,
    "hidden_size": 12,
    "layer_hidden_sizes": [20, 16, 12],
    "locked_dropout": True,
    "word_dropout": 0.1,
    "weight_drop": 0.5,
    "activation_regularization": 2,
    "temporal_activation_regularization": 1.5,
    "num_hidden_layers": 3,
    "embedding_dropout": 0.1,
    "hidden_dropout": 0.2,
    "output_dropout": 0.3,
    "initializer_range": 0.05,
    "use_cache": False,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": [1, 3],
    "problem_type": "multi_label_classification",
}


# ---------------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------------


class TestRoundTrip:
    def test_model_type(self, tmp_path):
        """The config registers as model_type "hf_rnn" and writes it into config.json."""
        assert RNNConfig.model_type == "hf_rnn"
        assert isinstance(AutoConfig.for_model("hf_rnn"), RNNConfig)
        tiny_config().save_pretrained(tmp_path)
        assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "hf_rnn"

    def test_documented_defaults(self):
        """The defaults are the ones the docstring documents."""
        config = RNNConfig()
        assert (config.vocab_size, config.embedding_size, config.hidden_size, config.num_hidden_layers) == (
            10000,
            256,
            256,
            2,
        )
        assert (config.cell_type, config.bidirectional, config.classifier_pooling) == ("lstm", False, "last")
        assert (config.embedding_dropout, config.hidden_dropout, config.output_dropout) == (0.0, 0.0, 0.0)
        # AWD-LSTM's toolbox is off by default, so that older checkpoints behave the same
        assert (config.word_dropout, config.weight_drop, config.locked_dropout) == (0.0, 0.0, False)
        assert (config.activation_regularization, config.temporal_activation_regularization) == (0.0, 0.0)
        assert config.layer_hidden_sizes is None and config.hidden_sizes == [256, 256]
        assert (config.tie_word_embeddings, config.initializer_range, config.use_cache) == (False, 0.1, True)
        assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (None, None, None)

    @pytest.mark.parametrize("cell_type", CELL_TYPES)
    @pytest.mark.parametrize("bidirectional", [False, True], ids=["unidirectional", "bidirectional"])
    def test_every_field_round_trips(self, tmp_path, cell_type, bidirectional):
        """save_pretrained -> RNNConfig.from_pretrained / AutoConfig.from_pretrained reproduce every field."""
        config = non_default_config(cell_type, bidirectional)
        config.save_pretrained(tmp_path)

        written = json.loads((tmp_path / "config.json").read_text())
        for name, value in EXPECTED_FIELDS.items():
            assert written[name] == value, name
        assert written["cell_type"] == cell_type
        assert written["bidirectional"] is bidirectional
        assert written["tie_word_embeddings"] is (not bidirectional)
        assert written["auto_map"] == AUTO_MAP

        for loader in (RNNConfig.from_pretrained, AutoConfig.from_pretrained):
            loaded = loader(tmp_path)
            assert type(loaded) is RNNConfig
            assert comparable(loaded) == comparable(config)
            for name, value in EXPECTED_FIELDS.items():
                assert getattr(loaded, name) == value, name
            assert loaded.cell_type == cell_type
            assert loaded.bidirectional is bidirectional
            assert loaded.tie_word_embeddings is (not bidirectional)
            assert loaded.classifier_pooling == config.classifier_pooling
            assert loaded.id2label == {0: "negative", 1: "neutral", 2: "positive"}  # int keys again after JSON
            assert loaded.label2id == {"negative": 0, "neutral": 1, "positive": 2}
            assert loaded.num_labels == 3
            assert loaded.num_directions == (2 if bidirectional else 1)
            assert loaded.num_state_tensors == (2 if cell_type == "lstm" else 1)

    def test_dict_round_trip(self):
        """to_dict -> from_dict reproduces the config."""
        config = non_default_config("gru", bidirectional=True)
        assert comparable(RNNConfig.from_dict(config.to_dict())) == comparable(config)


class TestLabels:
    def test_num_labels_builds_default_label_maps(self):
        """num_labels=N gives LABEL_0..LABEL_{N-1} in both directions, as every transformers config."""
        config = tiny_config(num_labels=3)
        assert config.num_labels == 3
        assert config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
        assert config.label2id == {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}

    def test_default_is_two_labels(self):
        assert tiny_config().num_labels == 2

    def test_id2label_sets_num_labels(self):
        config = tiny_config(id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"})
        assert config.num_labels == 4

    def test_label_maps_round_trip_through_json(self, tmp_path):
        """JSON turns id2label's int keys into strings; loading must accept them and give int keys back."""
        config = tiny_config(id2label={0: "O", 1: "B-PER", 2: "I-PER"}, label2id={"O": 0, "B-PER": 1, "I-PER": 2})
        config.save_pretrained(tmp_path)
        loaded = RNNConfig.from_pretrained(tmp_path)
        assert loaded.id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
        assert loaded.label2id == {"O": 0, "B-PER": 1, "I-PER": 2}

    def test_setting_num_labels_rebuilds_maps(self):
        config = tiny_config(num_labels=2)
        config.num_labels = 5
        assert config.num_labels == 5
        assert sorted(config.id2label) == [0, 1, 2, 3, 4]
        assert config.label2id == {f"LABEL_{i}": i for i in range(5)}

    @pytest.mark.parametrize(
        "problem_type", [None, "regression", "single_label_classification", "multi_label_classification"]
    )
    def test_problem_type_round_trips(self, tmp_path, problem_type):
        num_labels = 1 if problem_type == "regression" else 3
        config = tiny_config(num_labels=num_labels, problem_type=problem_type)
        config.save_pretrained(tmp_path)
        loaded = RNNConfig.from_pretrained(tmp_path)
        assert loaded.problem_type == problem_type
        assert loaded.num_labels == num_labels

    def test_single_label_with_one_label_is_refused(self):
        """transformers' own check: single-label classification needs at least 2 labels."""
        with pytest.raises(ValueError, match="requires `num_labels > 1`"):
            tiny_config(num_labels=1, problem_type="single_label_classification")


# ---------------------------------------------------------------------------------------------------------------------
# Invalid values: each raises ValueError naming the field and what is allowed
# ---------------------------------------------------------------------------------------------------------------------


class TestInvalidValues:
    @pytest.mark.parametrize("cell_type", ["transformer", "LSTM", "rnn"])
    def test_unknown_cell_type(self, cell_type):
        """An unknown cell type is a ValueError (so `except ValueError` works) listing the allowed ones."""
        with pytest.raises(ValueError, match=r"cell_type.*rnn_tanh.*rnn_relu.*lstm.*gru"):
            tiny_config(cell_type=cell_type)

    @pytest.mark.parametrize("field", SIZE_FIELDS)
    @pytest.mark.parametrize("value", [0, -1, -8])
    def test_non_positive_size(self, field, value):
        with pytest.raises(ValueError, match=rf"`{field}` must be a positive integer, got {value}\."):
            tiny_config(**{field: value})

    @pytest.mark.parametrize("field", DROPOUT_FIELDS)
    @pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
    def test_dropout_outside_unit_interval(self, field, value):
        message = rf"`{field}` is a dropout probability and must lie in \[0, 1\), got {value}"
        with pytest.raises(ValueError, match=message):
            tiny_config(**{field: value})

    @pytest.mark.parametrize("field", DROPOUT_FIELDS)
    @pytest.mark.parametrize("value", [0.0, 0.5, 0.99])
    def test_dropout_inside_unit_interval_is_accepted(self, field, value):
        assert getattr(tiny_config(**{field: value}), field) == value

    @pytest.mark.parametrize("field", LOSS_WEIGHT_FIELDS)
    @pytest.mark.parametrize("value", [-1, -0.5, float("inf"), float("nan")])
    def test_loss_weight_must_be_finite_and_non_negative(self, field, value):
        with pytest.raises(ValueError, match=rf"`{field}` is a loss weight and must be a finite number >= 0"):
            tiny_config(**{field: value})

    @pytest.mark.parametrize(
        "sizes, message",
        [
            ([8], r"`layer_hidden_sizes` has 1 entries but `num_hidden_layers=2`: give one hidden size per layer"),
            ([8, 8, 8], r"`layer_hidden_sizes` has 3 entries but `num_hidden_layers=2`"),
            ([16, 6], r"last of `layer_hidden_sizes` \[16, 6\] .* must equal `hidden_size=8`; set `hidden_size=6`"),
            ([0, 8], r"`layer_hidden_sizes` must be a list of positive integers, got \[0, 8\]"),
        ],
    )
    def test_bad_layer_hidden_sizes(self, sizes, message):
        with pytest.raises(ValueError, match=message):
            tiny_config(layer_hidden_sizes=sizes)

    def test_layer_hidden_sizes_with_tied_embeddings(self):
        """AWD-LSTM's shape: wide inner layers, the last as wide as the embedding so the head can be tied."""
        config = tiny_config(num_hidden_layers=3, layer_hidden_sizes=[20, 16, 8], tie_word_embeddings=True)
        assert config.hidden_sizes == [20, 16, 8]

    def test_tied_embeddings_need_equal_sizes(self):
        """hf_rnn refuses tying with embedding_size != hidden_size rather than adding a projection layer, so that
        the parameters are exactly those of the classic tied LSTM LM (Press & Wolf 2017; Inan et al. 2017)."""
        with pytest.raises(
            ValueError,
            match=re.escape("needs `embedding_size == hidden_size`; got embedding_size=4 and hidden_size=8"),
        ):
            tiny_config(tie_word_embeddings=True, embedding_size=4, hidden_size=8)

    def test_tied_embeddings_with_equal_sizes_are_accepted(self):
        assert tiny_config(tie_word_embeddings=True, embedding_size=8, hidden_size=8).tie_word_embeddings

    def test_tied_embeddings_refuse_bidirectional(self):
        message = "`tie_word_embeddings=True` is for causal language models, which cannot be bidirectional"
        with pytest.raises(ValueError, match=re.escape(message)):
            tiny_config(tie_word_embeddings=True, bidirectional=True)

    @pytest.mark.parametrize("pooling", ["first", "cls", "MEAN"])
    def test_bad_classifier_pooling(self, pooling):
        """An unknown pooling mode is a ValueError listing the allowed ones."""
        with pytest.raises(ValueError, match=r"classifier_pooling.*last.*mean.*max"):
            tiny_config(classifier_pooling=pooling)

    @pytest.mark.parametrize("name", ["pad_token_id", "bos_token_id"])
    @pytest.mark.parametrize("value", [-1, VOCAB_SIZE, VOCAB_SIZE + 5])
    def test_special_token_outside_vocabulary(self, name, value):
        message = rf"`{name}` must be None or an id in \[0, {VOCAB_SIZE - 1}\], got {value}"
        with pytest.raises(ValueError, match=message):
            tiny_config(**{name: value})

    @pytest.mark.parametrize("value", [-1, VOCAB_SIZE, [1, VOCAB_SIZE]])
    def test_eos_token_outside_vocabulary(self, value):
        with pytest.raises(ValueError, match=rf"`eos_token_id` must be None or ids in \[0, {VOCAB_SIZE - 1}\]"):
            tiny_config(eos_token_id=value)

    def test_special_tokens_at_vocabulary_edges_are_accepted(self):
        config = tiny_config(pad_token_id=0, bos_token_id=VOCAB_SIZE - 1, eos_token_id=[0, VOCAB_SIZE - 1])
        assert config.eos_token_id == [0, VOCAB_SIZE - 1]

    @pytest.mark.parametrize(
        "id2label, label2id",
        [
            ({0: "a", 1: "b"}, {"a": 0, "b": 1, "c": 2}),  # different label ids
            ({0: "a", 1: "b"}, {"a": 0, "c": 1}),  # same ids, different names
            ({0: "a", 1: "b"}, {"a": 1, "b": 0}),  # same ids and names, not inverse maps
        ],
        ids=["different-ids", "different-names", "swapped"],
    )
    def test_label_maps_that_disagree(self, id2label, label2id):
        """label2id must be the inverse of id2label."""
        with pytest.raises(ValueError, match=r"`label2id` .* and `id2label` .* must describe the same label"):
            tiny_config(id2label=id2label, label2id=label2id)

    def test_positional_arguments_are_refused(self):
        with pytest.raises(ValueError, match="RNNConfig accepts only keyword arguments"):
            RNNConfig(100)


LOADERS = [RNNConfig.from_pretrained, AutoConfig.from_pretrained]


class TestLoadingInvalidJson:
    def write_config(self, tmp_path, **fields):
        config = {"model_type": "hf_rnn", "vocab_size": VOCAB_SIZE, "embedding_size": 8, "hidden_size": 8}
        config.update(fields)
        (tmp_path / "config.json").write_text(json.dumps(config))

    def test_hand_written_json_loads(self, tmp_path):
        self.write_config(tmp_path, cell_type="gru")
        assert AutoConfig.from_pretrained(tmp_path).cell_type == "gru"

    @pytest.mark.parametrize("loader", LOADERS, ids=["RNNConfig", "AutoConfig"])
    def test_unknown_cell_type_in_json(self, tmp_path, loader):
        """A config.json with an unknown cell type fails to load with a ValueError."""
        self.write_config(tmp_path, cell_type="transformer")
        with pytest.raises(ValueError, match=r"cell_type.*rnn_tanh.*rnn_relu.*lstm.*gru"):
            loader(tmp_path)

    @pytest.mark.parametrize("loader", LOADERS, ids=["RNNConfig", "AutoConfig"])
    def test_non_positive_size_in_json(self, tmp_path, loader):
        self.write_config(tmp_path, hidden_size=0)
        with pytest.raises(ValueError, match=r"`hidden_size` must be a positive integer, got 0\."):
            loader(tmp_path)
