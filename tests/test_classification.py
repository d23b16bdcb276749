"""The classifier recipe (hf_rnn.classification, training/train_classifier.py, `hf-rnn train-classifier`): end to end
on tiny CSV and JSON data in real subprocesses, the ULMFiT path from a language model checkpoint, accuracy and
macro-F1 against scikit-learn, and every kind of bad input refused before training with no output folder left."""

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction, TrainerCallback, pipeline

from conftest import tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM, classification, cli
from hf_rnn.classification import accuracy_and_macro_f1, compute_metrics, parse_arguments, run_train_classifier


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "train_classifier.py"
POSITIVE = "happy big sun star very".split()
NEGATIVE = "sad small moon rug but".split()
FILLER = "the a cat dog sat on it is".split()


def make_rows(count: int, seed: int, labels=("positive", "negative")) -> list[dict]:
    """Texts of tiny-tokenizer words whose label is told by their mood words (learnable in a few epochs)."""
    generator = random.Random(seed)
    rows = []
    for i in range(count):
        label = labels[i % len(labels)]
        words = generator.sample(FILLER, 3) + generator.sample(POSITIVE if i % 2 == 0 else NEGATIVE, 2)
        generator.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# Small and fast: 8-wide states (a new model), no checkpoints, no reporting, no progress bars.
NEW_MODEL_OPTIONS = ["--embedding_size", "8", "--hidden_size", "8", "--tokenizer_vocab_size", "200"]
TRAINING_VALUES = dict(
    num_train_epochs=4,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=16,
    learning_rate=0.02,
    report_to="none",
    save_strategy="no",
    logging_strategy="no",
    disable_tqdm=True,
    use_cpu=True,
    seed=0,
)
TRAINING_OPTIONS = [item for name, value in TRAINING_VALUES.items() for item in (f"--{name}", str(value).lower())]
FAST_OPTIONS = NEW_MODEL_OPTIONS + TRAINING_OPTIONS


def leftovers(output_dir: Path) -> list[Path]:
    """The output folder and any staging folder `.{name}.tmp-*` next to it."""
    return [
        path
        for path in output_dir.parent.iterdir()
        if path.name == output_dir.name or path.name.startswith(f".{output_dir.name}.")
    ]


def run_subprocess(command: list[str], env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def predict(output_dir: Path, texts: list[str]) -> list[int]:
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return logits.argmax(-1).tolist()


# ---------------------------------------------------------------------------------------------------------------------
# End to end, in subprocesses
# ---------------------------------------------------------------------------------------------------------------------


def test_script_trains_a_bidirectional_classifier_from_csv(tmp_path, hf_env):
    train = write_csv(tmp_path / "train.csv", make_rows(48, seed=0))
    validation = write_csv(tmp_path / "dev.csv", make_rows(16, seed=1))
    test = write_csv(tmp_path / "test.csv", make_rows(12, seed=2))
    output_dir = tmp_path / "classifier"
    run_subprocess(
        [
            sys.executable,
            str(SCRIPT),
            "--train_file",
            str(train),
            "--validation_file",
            str(validation),
            "--test_file",
            str(test),
            "--bidirectional",
            "--classifier_pooling",
            "mean",
            "--output_dir",
            str(output_dir),
            *FAST_OPTIONS,
        ],
        hf_env,
    )
    assert leftovers(output_dir) == [output_dir]  # no staging folder left behind
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "all_results.json",
        "README.md",
        "modeling_rnn.py",
    ):
        assert (output_dir / name).is_file(), name

    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    config = model.config
    assert config.bidirectional and config.classifier_pooling == "mean" and config.cell_type == "lstm"
    assert config.id2label == {0: "negative", 1: "positive"}  # sorted labels
    assert config.label2id == {"negative": 0, "positive": 1}
    assert config.vocab_size == len(AutoTokenizer.from_pretrained(output_dir))  # the tokenizer trained on train.csv

    # the reported metrics are those of the saved model on the data (recomputed here with scikit-learn)
    results = json.loads((output_dir / "all_results.json").read_text())
    for prefix, path in (("eval", validation), ("test", test)):
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        references = [config.label2id[row["label"]] for row in rows]
        predictions = predict(output_dir, [row["text"] for row in rows])
        assert results[f"{prefix}_accuracy"] == pytest.approx(accuracy_score(references, predictions))
        assert results[f"{prefix}_macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro"))
        assert results[f"{prefix}_samples"] == len(rows)
    assert results["eval_accuracy"] >= 0.75  # it learned the mood words

    classifier = pipeline("text-classification", model=str(output_dir))
    outputs = classifier(["the cat is happy and big", "the dog is sad on a small rug"])
    assert {output["label"] for output in outputs} <= {"negative", "positive"}

    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "| 1 | positive |" in card
    assert f"| validation | Accuracy | {results['eval_accuracy']:.4f} |" in card


def test_cli_trains_from_json_lines_with_integer_labels(tmp_path, hf_env):
    """`hf-rnn train-classifier`, a JSON arguments file, .jsonl data, integer labels sorted numerically."""
    rows = make_rows(40, seed=3, labels=(10, 2))
    train = write_json_lines(tmp_path / "train.jsonl", rows)
    test = write_json_lines(tmp_path / "test.json", make_rows(10, seed=4, labels=(10, 2)))
    output_dir = tmp_path / "json-classifier"
    arguments = {**TRAINING_VALUES, "embedding_size": 8, "hidden_size": 8, "tokenizer_vocab_size": 200}
    arguments.update(
        train_file=str(train),
        test_file=str(test),
        output_dir=str(output_dir),
        cell_type="gru",
        num_train_epochs=1,
        max_train_samples=24,
    )
    arguments_file = tmp_path / "arguments.json"
    arguments_file.write_text(json.dumps(arguments))
    script = Path(sys.executable).parent / "hf-rnn"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "hf_rnn.cli"]
    run_subprocess([*command, "train-classifier", str(arguments_file)], hf_env)

    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert model.config.id2label == {0: "2", 1: "10"} and model.config.cell_type == "gru"
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["train_samples"] == 24 and results["test_samples"] == 10
    assert "eval_accuracy" not in results and 0.0 <= results["test_macro_f1"] <= 1.0
    labels = {output["label"] for output in pipeline("text-classification", model=str(output_dir))(["happy sun"] * 2)}
    assert labels <= {"2", "10"}


# ---------------------------------------------------------------------------------------------------------------------
# ULMFiT: from a language model checkpoint
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def lm_dir(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "lm"
    RNNForCausalLM(tiny_config(tie_word_embeddings=True)).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


class BackboneAtStart(TrainerCallback):
    """Keeps a copy of the weights the training starts from."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state_dict = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_classifier_starts_from_the_language_model(tmp_path, lm_dir):
    train = write_csv(tmp_path / "train.tsv", make_rows(24, seed=5), delimiter="\t")
    validation = write_csv(tmp_path / "dev.tsv", make_rows(8, seed=6), delimiter="\t")
    output_dir = tmp_path / "ulmfit"
    model_args, data_args, training_args = parse_arguments(
        [
            "--model_name_or_path",
            str(lm_dir),
            "--train_file",
            str(train),
            "--validation_file",
            str(validation),
            "--classifier_pooling",
            "max",
            "--output_dropout",
            "0.1",
            "--output_dir",
            str(output_dir),
            "--cache_dir",
            str(tmp_path / "cache"),
            "--eval_strategy",
            "epoch",
            *TRAINING_OPTIONS,
        ]
    )
    start = BackboneAtStart()
    results = run_train_classifier(model_args, data_args, training_args, callbacks=[start])

    language_model = RNNForCausalLM.from_pretrained(lm_dir).state_dict()
    backbone = {name: tensor for name, tensor in language_model.items() if name.startswith("model.")}
    assert backbone and set(backbone) <= set(start.state_dict)
    for name, tensor in backbone.items():
        assert torch.equal(start.state_dict[name], tensor), name  # the backbone starts as the language model
    assert set(start.state_dict) - set(backbone) == {"score.weight", "score.bias"}  # only the head is new

    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert not torch.equal(model.model.embed_tokens.weight, backbone["model.embed_tokens.weight"])  # then it trained
    config = model.config
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (37, 8, 2)  # the LM's architecture
    assert (config.classifier_pooling, config.output_dropout) == ("max", 0.1)  # fine-tuning overrides
    assert config.id2label == {0: "negative", 1: "positive"}
    assert len(AutoTokenizer.from_pretrained(output_dir)) == 37  # the LM's tokenizer
    assert "eval_accuracy" in results and "eval_macro_f1" in results
    card = (output_dir / "README.md").read_text()
    assert f"language model `{lm_dir}`" in card and "- ulmfit" in card


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def test_accuracy_and_macro_f1_match_scikit_learn():
    generator = numpy.random.default_rng(0)
    references = generator.integers(0, 4, size=50)
    predictions = numpy.where(generator.random(50) < 0.6, references, generator.integers(0, 5, size=50))
    predictions[:2] = 4  # a label that only the predictions hold
    metrics = accuracy_and_macro_f1(predictions, references)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(references, predictions))
    assert metrics["macro_f1"] == pytest.approx(f1_score(references, predictions, average="macro"))

    # known values: labels 0 and 1, one mistake out of four
    assert accuracy_and_macro_f1([0, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx({"accuracy": 0.75, "macro_f1": 11 / 15})

    logits = numpy.eye(3)[[0, 2, 1, 1]] + 0.1  # predictions 0, 2, 1, 1
    metrics = compute_metrics(EvalPrediction(predictions=logits, label_ids=numpy.array([0, 2, 2, 1])))
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx(f1_score([0, 2, 2, 1], [0, 2, 1, 1], average="macro"))
    with pytest.raises(ValueError, match="same length"):
        accuracy_and_macro_f1([0, 1], [0])


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: refused before training, no output folder
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to build a Trainer fails the test: bad input must be refused before."""

    def refuse(*args, **kwargs):
        raise AssertionError("a Trainer was created: training started despite bad input")

    monkeypatch.setattr(classification, "Trainer", refuse)


def bad_input_cases(tmp_path: Path, lm_dir: Path) -> dict[str, tuple[list[str], str]]:
    write_csv(tmp_path / "train.csv", make_rows(12, seed=0))
    write_csv(tmp_path / "unknown_label.csv", make_rows(4, seed=1, labels=("positive", "surprised")))
    write_csv(tmp_path / "one_label.csv", make_rows(6, seed=2, labels=("positive",)))
    write_csv(tmp_path / "other_columns.csv", [{"review": "the cat", "label": "positive"}])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "train.txt").write_text("the cat\n")
    big_tokenizer = tiny_tokenizer()
    big_tokenizer.add_tokens(["zebra", "giraffe"])
    big_tokenizer.save_pretrained(tmp_path / "big-tokenizer")
    lm = ["--model_name_or_path", str(lm_dir)]
    return {
        "missing file": (["--train_file", str(tmp_path / "missing.csv")], "do not exist"),
        "missing validation file": (["--validation_file", str(tmp_path / "nope.csv")], "validation_file"),
        "empty file": (["--validation_file", str(tmp_path / "empty.csv")], "is empty"),
        "unsupported format": (["--train_file", str(tmp_path / "train.txt")], "unknown extension '.txt'"),
        "missing text column": (
            ["--text_column", "review"],
            r"`text_column` 'review'.*available columns: \['text', 'label'\]",
        ),
        "missing label column": (["--label_column", "sentiment"], r"`label_column` 'sentiment'.*\['text', 'label'\]"),
        "text column missing in test": (
            ["--test_file", str(tmp_path / "other_columns.csv")],
            r"test_file.*\['review', 'label'\]",
        ),
        "validation label outside the set": (
            ["--validation_file", str(tmp_path / "unknown_label.csv")],
            r"lacks: \['surprised'\]",
        ),
        "test label outside the set": (
            ["--test_file", str(tmp_path / "unknown_label.csv")],
            r"test data has labels.*surprised",
        ),
        "one label only": (["--train_file", str(tmp_path / "one_label.csv")], "at least 2"),
        "unknown cell type": (["--cell_type", "transformer"], "`cell_type` must be one of"),
        "bad pooling": (["--classifier_pooling", "first"], "`classifier_pooling` must be one of"),
        "tokenizer larger than the checkpoint's vocabulary": (
            [*lm, "--tokenizer_name_or_path", str(tmp_path / "big-tokenizer")],
            "39 tokens but the model's `vocab_size` is 37",
        ),
        "architecture differs from the checkpoint": ([*lm, "--hidden_size", "16"], "comes from the checkpoint"),
        "bidirectional language model": ([*lm, "--bidirectional"], "`bidirectional`=True differs"),
        "evaluation without validation data": (["--eval_strategy", "epoch"], "no labelled validation data"),
        "tokenizer that does not exist": (["--tokenizer_name_or_path", str(tmp_path / "no-tokenizer")], "no tokenizer"),
        "unknown tokenizer kind": (["--tokenizer_kind", "sentencepiece"], "`tokenizer_kind` must be one of"),
        "vocab_size below the tokenizer's": (
            ["--tokenizer_name_or_path", str(tmp_path / "big-tokenizer"), "--vocab_size", "20"],
            "smaller than the tokenizer's 39",
        ),
    }


CASE_NAMES = [
    "missing file",
    "missing validation file",
    "empty file",
    "unsupported format",
    "missing text column",
    "missing label column",
    "text column missing in test",
    "validation label outside the set",
    "test label outside the set",
    "one label only",
    "unknown cell type",
    "bad pooling",
    "tokenizer larger than the checkpoint's vocabulary",
    "architecture differs from the checkpoint",
    "bidirectional language model",
    "evaluation without validation data",
    "tokenizer that does not exist",
    "unknown tokenizer kind",
    "vocab_size below the tokenizer's",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_refused_before_training(tmp_path, lm_dir, no_training, case):
    cases = bad_input_cases(tmp_path, lm_dir)
    assert list(cases) == CASE_NAMES
    options, message = cases[case]
    output_dir = tmp_path / "out"
    model_options = TRAINING_OPTIONS if "--model_name_or_path" in options else FAST_OPTIONS
    base = [
        "--train_file",
        str(tmp_path / "train.csv"),
        "--output_dir",
        str(output_dir),
        "--cache_dir",
        str(tmp_path / "cache"),
        *model_options,
    ]
    # later options win: the case's options replace the base ones
    with pytest.raises(ValueError, match=message):
        classification.main(base + options)
    assert leftovers(output_dir) == []


def test_cli_reports_bad_input_on_one_line(tmp_path, capsys, no_training):
    write_csv(tmp_path / "train.csv", make_rows(6, seed=0))
    status = cli.main(
        [
            "train-classifier",
            "--train_file",
            str(tmp_path / "train.csv"),
            "--cell_type",
            "transformer",
            "--output_dir",
            str(tmp_path / "out"),
            "--cache_dir",
            str(tmp_path / "cache"),
        ]
    )
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2 and error.startswith("hf-rnn train-classifier: error: `cell_type` must be one of")
    assert not (tmp_path / "out").exists()


def test_output_dir_is_not_overwritten_without_overwrite(tmp_path, no_training):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("keep me")
    write_csv(tmp_path / "train.csv", make_rows(6, seed=0))
    with pytest.raises(ValueError, match="already exists and is not empty"):
        classification.main(["--train_file", str(tmp_path / "train.csv"), "--output_dir", str(output_dir)])
    assert (output_dir / "notes.txt").read_text() == "keep me"
