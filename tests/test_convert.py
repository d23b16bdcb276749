"""hf_rnn.convert and `hf-rnn convert`: plain-PyTorch RNN/LSTM/GRU checkpoints become hf_rnn models with the same
outputs, and bad input fails clearly, without running pickled code or leaving a half-written output folder."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModelForTokenClassification

from conftest import VOCAB_SIZE, random_ids, randomize_biases
from hf_rnn import cli
from hf_rnn.convert import convert_checkpoint, convert_state_dict, detect_format, load_state_dict
from hf_rnn.modeling_rnn import RNNPreTrainedModel


ATOL = 1e-5
# Two classes: configs with more labels do not reload yet (see test_classifier_with_three_labels_reloads).
EMBED, HIDDEN, NUM_CLASSES = 6, 5, 3


def rnn_module_class(cell_type: str):
    """hf_rnn cell type -> (PyTorch module class, extra kwargs)."""
    if cell_type.startswith("rnn_"):
        return nn.RNN, {"nonlinearity": cell_type[4:]}
    return {"lstm": nn.LSTM, "gru": nn.GRU}[cell_type], {}


# ---------------------------------------------------------------------------------------------------------------------
# The plain-PyTorch models users start with (the tutorial's classes, for any cell type, depth and direction)
# ---------------------------------------------------------------------------------------------------------------------


class SimpleRNN(nn.Module):
    """The tutorial's SimpleRNN: a head on every step. RNNLM is SimpleRNN with output_dim=vocab_size."""

    def __init__(
        self, vocab_size, embed_dim, hidden_dim, output_dim, cell_type="rnn_tanh", num_layers=1, bidirectional=False
    ):
        super().__init__()
        rnn_class, kwargs = rnn_module_class(cell_type)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = rnn_class(
            embed_dim, hidden_dim, num_layers=num_layers, batch_first=True, bidirectional=bidirectional, **kwargs
        )
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), output_dim)

    def forward(self, text, hidden=None):
        embedded = self.embedding(text)  # (batch, seq_len, embed_dim)
        output, hidden = self.rnn(embedded, hidden)
        prediction = self.fc(output)
        return prediction, hidden


class RNNClassifier(nn.Module):
    """The tutorial's RNNClassifier: a head on the top layer's last hidden state (both directions if bidirectional)."""

    def __init__(
        self, vocab_size, embed_dim, hidden_dim, num_classes, cell_type="rnn_tanh", num_layers=1, bidirectional=False
    ):
        super().__init__()
        rnn_class, kwargs = rnn_module_class(cell_type)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = rnn_class(
            embed_dim, hidden_dim, num_layers=num_layers, batch_first=True, bidirectional=bidirectional, **kwargs
        )
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), num_classes)

    def forward(self, text):
        embedded = self.embedding(text)
        output, hidden = self.rnn(embedded)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # an LSTM returns (h_n, c_n)
        # h_n is [num_layers * directions, batch, hidden]: the top layer's forward (and backward) states
        last = torch.cat([hidden[-2], hidden[-1]], dim=-1) if self.rnn.bidirectional else hidden[-1]
        return self.fc(last)


class WordLanguageModel(nn.Module):
    """pytorch/examples word_language_model's RNNModel (time-major input [T, B]), as in its model.py."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def build(model_class, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return randomize_biases(model_class(*args, **kwargs), seed=seed).eval()


def save(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def no_leftovers(folder: Path, keep=()) -> bool:
    """No output folder and no temporary sibling left behind in `folder`."""
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


# ---------------------------------------------------------------------------------------------------------------------
# Equal outputs
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
def test_tutorial_language_model(cell_type, num_layers, tmp_path):
    original = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, cell_type=cell_type, num_layers=num_layers)
    nonlinearity = "relu" if cell_type == "rnn_relu" else None
    convert_checkpoint(save(original, tmp_path / "rnnlm.pt"), tmp_path / "hf", nonlinearity=nonlinearity)
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert converted.config.cell_type == cell_type and converted.config.num_hidden_layers == num_layers
    assert converted.config.hidden_size == HIDDEN and converted.config.embedding_size == EMBED

    input_ids = random_ids(3, 7)
    with torch.no_grad():
        expected, _ = original(input_ids)
        torch.testing.assert_close(converted(input_ids).logits, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_tutorial_classifier(cell_type, bidirectional, num_layers, tmp_path):
    original = build(
        RNNClassifier,
        VOCAB_SIZE,
        EMBED,
        HIDDEN,
        NUM_CLASSES,
        cell_type=cell_type,
        num_layers=num_layers,
        bidirectional=bidirectional,
    )
    convert_checkpoint(
        save(original, tmp_path / "classifier.pt"),
        tmp_path / "hf",
        task="sequence-classification",
        cell_type=cell_type,
        num_labels=NUM_CLASSES,
    )
    converted = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert converted.config.bidirectional == bidirectional and converted.config.classifier_pooling == "last"
    assert converted.config.num_labels == NUM_CLASSES

    input_ids = random_ids(3, 7)
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids).logits, original(input_ids), atol=ATOL, rtol=0)


def test_tutorial_classifier_task_inferred_from_head_width():
    original = build(RNNClassifier, VOCAB_SIZE, EMBED, HIDDEN, NUM_CLASSES, cell_type="gru")
    converted = convert_state_dict(original.state_dict())  # format, cell type and task all inferred
    assert type(converted).__name__ == "RNNForSequenceClassification"
    input_ids = random_ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids).logits, original(input_ids), atol=ATOL, rtol=0)


def test_classifier_with_three_labels_reloads(tmp_path):
    original = build(RNNClassifier, VOCAB_SIZE, EMBED, HIDDEN, 3, cell_type="lstm")
    in_memory = convert_checkpoint(save(original, tmp_path / "classifier.pt"), tmp_path / "hf")
    input_ids = random_ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(in_memory(input_ids).logits, original(input_ids), atol=ATOL, rtol=0)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids).logits, original(input_ids), atol=ATOL, rtol=0)


def test_tutorial_bidirectional_tagger(tmp_path):
    """SimpleRNN with a head narrower than the vocabulary on every step: token classification."""
    original = build(
        SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, NUM_CLASSES, cell_type="lstm", num_layers=2, bidirectional=True
    )
    convert_checkpoint(save(original, tmp_path / "tagger.pt"), tmp_path / "hf", task="token-classification")
    converted = AutoModelForTokenClassification.from_pretrained(tmp_path / "hf").eval()
    input_ids = random_ids(3, 6)
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids).logits, original(input_ids)[0], atol=ATOL, rtol=0)


WLM_TYPES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_word_language_model(cell_type, tied, tmp_path):
    rnn_type = WLM_TYPES[cell_type]
    size = HIDDEN  # tying needs embedding size == hidden size
    original = build(WordLanguageModel, rnn_type, VOCAB_SIZE, size, size, 2, dropout=0.3, tie_weights=tied)
    # word_language_model's users know their rnn_type: pass it, as its main.py's --model
    convert_checkpoint(save(original, tmp_path / "model.pt"), tmp_path / "hf", cell_type=rnn_type, dropout=0.3)
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    config = converted.config
    assert config.tie_word_embeddings == tied and config.cell_type == cell_type
    assert (config.embedding_dropout, config.hidden_dropout, config.output_dropout) == (0.3, 0.3, 0.3)
    if tied:
        assert converted.lm_head.weight.data_ptr() == converted.model.embed_tokens.weight.data_ptr()

    input_ids = random_ids(3, 7)  # [B, T]; word_language_model reads [T, B]
    time_major = input_ids.t()
    with torch.no_grad():
        logits = converted(input_ids).logits  # [B, T, V]
        log_probs, _ = original(time_major, original.init_hidden(3))  # [T * B, V]
        torch.testing.assert_close(
            F.log_softmax(logits, -1).transpose(0, 1).reshape(-1, VOCAB_SIZE), log_probs, atol=ATOL, rtol=0
        )
        decoded = original.decoder(original.rnn(original.encoder(time_major))[0])  # raw scores [T, B, V]
        torch.testing.assert_close(logits.transpose(0, 1), decoded, atol=ATOL, rtol=0)


def test_word_language_model_tied_safetensors_keeps_one_name(tmp_path):
    """safetensors.torch.save_model stores shared tensors once: the missing twin means tied weights."""
    from safetensors.torch import save_model

    original = build(WordLanguageModel, "LSTM", VOCAB_SIZE, HIDDEN, HIDDEN, 1, dropout=0.0, tie_weights=True)
    save_model(original, tmp_path / "model.safetensors")
    assert len(load_state_dict(tmp_path / "model.safetensors")) == len(original.state_dict()) - 1
    converted = convert_checkpoint(tmp_path / "model.safetensors", tmp_path / "hf")
    assert converted.config.tie_word_embeddings
    input_ids = random_ids(2, 5)
    with torch.no_grad():
        decoded = original.decoder(original.rnn(original.encoder(input_ids.t()))[0])
        torch.testing.assert_close(converted(input_ids).logits.transpose(0, 1), decoded, atol=ATOL, rtol=0)


@pytest.mark.parametrize("container", ["state_dict", "model_state_dict", "safetensors", "data_parallel"])
def test_accepted_containers(container, tmp_path):
    original = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, cell_type="gru")
    state_dict = original.state_dict()
    path = tmp_path / "model.pt"
    if container == "safetensors":
        path = tmp_path / "model.safetensors"
        save_file({key: value.contiguous() for key, value in state_dict.items()}, path)
    elif container == "data_parallel":
        torch.save({f"module.{key}": value for key, value in state_dict.items()}, path)
    else:  # a training checkpoint: the weights next to other entries
        torch.save({container: state_dict, "epoch": 3, "optimizer": {"lr": 0.1}}, path)
    converted = convert_checkpoint(path, tmp_path / "hf")
    input_ids = random_ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids).logits, original(input_ids)[0], atol=ATOL, rtol=0)


def test_rnn_without_biases():
    original = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, cell_type="lstm")
    state_dict = {key: value for key, value in original.state_dict().items() if not key.startswith("rnn.bias")}
    with torch.no_grad():
        for name in ("bias_ih_l0", "bias_hh_l0"):
            getattr(original.rnn, name).zero_()  # what nn.LSTM(bias=False) computes
    converted = convert_state_dict(state_dict)
    input_ids = random_ids(2, 5)
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids).logits, original(input_ids)[0], atol=ATOL, rtol=0)


def test_extra_config_and_dtype():
    """Non-architecture fields pass through; a half-precision checkpoint stays in half precision."""
    original = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, cell_type="gru").to(torch.bfloat16)
    converted = convert_state_dict(original.state_dict(), extra_config={"eos_token_id": 1, "pad_token_id": 0})
    assert (converted.config.eos_token_id, converted.config.pad_token_id) == (1, 0)
    assert {parameter.dtype for parameter in converted.parameters()} == {torch.bfloat16}
    assert torch.equal(converted.model.layers[0].rnn.weight_hh_l0, original.rnn.weight_hh_l0)
    assert torch.equal(converted.lm_head.bias, original.fc.bias)


# ---------------------------------------------------------------------------------------------------------------------
# Format detection and options checked against the weights
# ---------------------------------------------------------------------------------------------------------------------


def test_detect_format():
    tutorial = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE).state_dict()
    wlm = build(WordLanguageModel, "GRU", VOCAB_SIZE, EMBED, HIDDEN, 1, dropout=0.0).state_dict()
    assert detect_format(tutorial) == "tutorial"
    assert detect_format(wlm) == "word_language_model"
    with pytest.raises(ValueError, match="format"):
        detect_format({"weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="TransformerModel"):
        detect_format({"transformer_encoder.layers.0.linear1.weight": torch.zeros(2, 2), **wlm})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cell_type": "gru"}, "gate block"),  # LSTM weights
        ({"nonlinearity": "relu"}, "vanilla nn.RNN"),
        ({"cell_type": "lstm", "nonlinearity": "tanh"}, "contradicts"),
        ({"task": "sequence-classification", "num_labels": 4}, "num_labels=4"),
        ({"task": "translation"}, "`task` must be one of"),
        ({"format": "word_language_model"}, "Missing keys: .*encoder.weight"),
        ({"format": "keras"}, "`format` must be one of"),
        ({"dropout": 1.5}, "`dropout`"),
        ({"extra_config": {"hidden_size": 9}}, "hidden_size"),
    ],
)
def test_options_contradicting_the_weights(options, message):
    state_dict = build(RNNClassifier, VOCAB_SIZE, EMBED, HIDDEN, NUM_CLASSES, cell_type="lstm").state_dict()
    with pytest.raises(ValueError, match=message):
        convert_state_dict(state_dict, **options)


def test_bidirectional_language_model_refused():
    state_dict = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, bidirectional=True).state_dict()
    with pytest.raises(ValueError, match="cannot be bidirectional"):
        convert_state_dict(state_dict, task="causal-lm")


def test_tying_contradicting_the_weights_refused():
    state_dict = build(WordLanguageModel, "LSTM", VOCAB_SIZE, HIDDEN, HIDDEN, 1, dropout=0.0).state_dict()
    with pytest.raises(ValueError, match="different values"):
        convert_state_dict(state_dict, tie_word_embeddings=True)


# ---------------------------------------------------------------------------------------------------------------------
# Errors: keys, unsafe files, missing files, nothing half-written
# ---------------------------------------------------------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state_dict = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE, num_layers=2).state_dict()
    del state_dict["rnn.weight_hh_l1"]
    state_dict["attention.weight"] = torch.zeros(3, 3)
    path = tmp_path / "model.pt"
    torch.save(state_dict, path)
    with pytest.raises(ValueError) as error:
        convert_checkpoint(path, tmp_path / "hf", format="tutorial")
    message = str(error.value)
    assert "Missing keys: [rnn.weight_hh_l1]" in message
    assert "Unexpected keys: [attention.weight]" in message
    assert "'tutorial'" in message
    assert no_leftovers(tmp_path, keep=["model.pt"])


def _create_marker(path):
    """Run by pickle when an `_Exploit` is unpickled: proof that loading executed code from the file."""
    Path(path).write_text("unpickled")
    return "exploit"


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _create_marker, (str(self.marker),)


@pytest.mark.parametrize("payload", ["whole_model", "object_in_state_dict"])
def test_pickled_objects_are_refused_without_running_them(payload, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pt"
    if payload == "whole_model":
        model = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE)
        model.exploit = _Exploit(marker)  # unpickling the model would also unpickle this attribute
        torch.save(model, path)
    else:
        state_dict = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE).state_dict()
        torch.save({**state_dict, "extra": _Exploit(marker)}, path)
    # The payload is live: a plain unpickling runs it.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "unpickled"
    marker.unlink()

    with pytest.raises(ValueError, match=r"model\.state_dict\(\)"):
        convert_checkpoint(path, tmp_path / "hf")
    assert not marker.exists()
    assert no_leftovers(tmp_path, keep=["model.pt"])


def test_missing_input_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist.pt"):
        convert_checkpoint(tmp_path / "does-not-exist.pt", tmp_path / "hf")
    assert no_leftovers(tmp_path)


def test_unreadable_file(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Could not read"):
        convert_checkpoint(tmp_path / "model.pt", tmp_path / "hf")


def test_failed_save_leaves_no_output_folder(tmp_path, monkeypatch):
    """A crash in the middle of writing removes the partial files: no output folder, no temporary folder."""
    path = save(build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE), tmp_path / "model.pt")
    original_save = RNNPreTrainedModel.save_pretrained

    def save_then_crash(self, save_directory, **kwargs):
        original_save(self, save_directory, **kwargs)  # writes config.json, model.safetensors, ...
        raise OSError("disk full")

    monkeypatch.setattr(RNNPreTrainedModel, "save_pretrained", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(path, tmp_path / "out" / "hf")
    assert no_leftovers(tmp_path / "out")


def test_existing_output_dir(tmp_path):
    path = save(build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE), tmp_path / "model.pt")
    output_dir = tmp_path / "hf"
    output_dir.mkdir()
    (output_dir / "old.txt").write_text("keep me")
    with pytest.raises(ValueError, match="overwrite"):
        convert_checkpoint(path, output_dir)
    with pytest.raises(ValueError, match="no config.json"):  # overwrite deletes only a saved model
        convert_checkpoint(path, output_dir, overwrite=True)
    assert (output_dir / "old.txt").exists()
    (output_dir / "config.json").write_text("{}")  # a previous conversion
    convert_checkpoint(path, output_dir, overwrite=True)
    assert not (output_dir / "old.txt").exists() and (output_dir / "model.safetensors").exists()
    assert no_leftovers(tmp_path, keep=["hf", "model.pt"])
    with pytest.raises(ValueError, match="holds the input file"):
        convert_checkpoint(
            save(build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE), output_dir / "in.pt"),
            output_dir,
            overwrite=True,
        )
    assert (output_dir / "in.pt").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def test_cli_error_is_one_line_with_status_2(tmp_path, capsys):
    state_dict = build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE).state_dict()
    state_dict["extra.weight"] = torch.zeros(1)
    torch.save(state_dict, tmp_path / "model.pt")
    status = cli.main(["convert", str(tmp_path / "model.pt"), str(tmp_path / "hf")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("hf-rnn convert: error:") and error.count("\n") == 1 and "extra.weight" in error
    assert no_leftovers(tmp_path, keep=["model.pt"])

    assert cli.main(["convert", str(tmp_path / "missing.pt"), str(tmp_path / "hf")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_cli_console_script_converts(tmp_path, hf_env):
    """`hf-rnn convert` in a real subprocess: the installed console script, with flags."""
    script = Path(sys.executable).parent / "hf-rnn"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hf_rnn.cli"]
    original = build(WordLanguageModel, "RNN_RELU", VOCAB_SIZE, EMBED, HIDDEN, 2)
    path = save(original, tmp_path / "model.pt")
    result = subprocess.run(
        [
            *command,
            "convert",
            str(path),
            str(tmp_path / "hf"),
            "--format",
            "word_language_model",
            "--nonlinearity",
            "relu",
            "--dropout",
            "0.2",
        ],
        capture_output=True,
        text=True,
        env=hf_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "RNNForCausalLM" in result.stdout
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert converted.config.cell_type == "rnn_relu" and converted.config.hidden_dropout == 0.2
    input_ids = random_ids(2, 6)
    with torch.no_grad():
        decoded = original.decoder(original.rnn(original.encoder(input_ids.t()))[0])
        torch.testing.assert_close(converted(input_ids).logits.transpose(0, 1), decoded, atol=ATOL, rtol=0)


def test_cli_module_refuses_pickled_model(tmp_path, hf_env):
    """`python -m hf_rnn.cli convert` on a whole pickled model: status 2, one line, no traceback, no output."""
    torch.save(build(SimpleRNN, VOCAB_SIZE, EMBED, HIDDEN, VOCAB_SIZE), tmp_path / "model.pt")
    result = subprocess.run(
        [sys.executable, "-m", "hf_rnn.cli", "convert", str(tmp_path / "model.pt"), str(tmp_path / "hf")],
        capture_output=True,
        text=True,
        env=hf_env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hf-rnn convert: error:")
    assert "model.state_dict()" in result.stderr
    assert no_leftovers(tmp_path, keep=["hf_home", "model.pt"] if (tmp_path / "hf_home").exists() else ["model.pt"])
