"""The data side of the quality benchmarks (benchmarks/ptb_quality.py, sst2_quality.py, baselines.py) on tiny files
written here: word_language_model's reader and batchify, the per-word token counts that make hf_rnn's and the
baseline's perplexities comparable, the SST-2 converter, and the baseline's training loop. The real data
(../shared/data) is never read."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_rnn.classification import DataArguments, load_classification_splits

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import baselines  # noqa: I001 (after the sys.path entry that makes benchmarks/ importable)
import ptb_quality
import sst2_quality


# PTB's layout: lowercased, tokenized, a space at both ends of every line, <unk> and N written in the text
PTB_LINES = {
    "train": [" the cat sat on the <unk> mat ", " a dog ran N miles ", " the <unk> <unk> cat ran "] * 4,
    "valid": [" the dog sat ", " a <unk> ran on the mat "],
    "test": [" the cat ran N ", " a dog sat on the <unk> "],
}


@pytest.fixture
def ptb_dir(tmp_path) -> Path:
    folder = tmp_path / "data" / "ptb"
    folder.mkdir(parents=True)
    for split, lines in PTB_LINES.items():
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "data"


def test_ptb_reader_batchify_and_per_word_token_counts(ptb_dir, tmp_path):
    files = ptb_quality.ptb_files(ptb_dir)
    expected = {split: sum(len(line.split()) + 1 for line in lines) for split, lines in PTB_LINES.items()}
    assert ptb_quality.baseline_token_counts(files) == expected  # words + one <eos> per line

    corpus = baselines.Corpus(files["train"], files["valid"], files["test"])
    assert len(corpus.train) == expected["train"]
    assert corpus.dictionary.id_to_word[:4] == ["the", "cat", "sat", "on"]  # order of first appearance
    assert (corpus.train == corpus.dictionary.word_to_id["<eos>"]).sum() == len(PTB_LINES["train"])

    # hf_rnn: the word tokenizer (every word, PTB's <unk> as its unk) and the recipe's EOS per line give the same counts
    distinct = {word for lines in PTB_LINES.values() for line in lines for word in line.split()} - {"<unk>"}
    tokenizer = ptb_quality.train_word_tokenizer(files["train"], tmp_path / "tokenizer", 4 + len(distinct))
    assert len(tokenizer) == 4 + len(distinct)
    recipe = ptb_quality.recipe_token_counts(files, tokenizer)
    assert recipe == expected
    ptb_quality.check_token_counts(expected, recipe)
    with pytest.raises(ValueError, match=r"Token counts differ \(valid: baseline 11, hf_rnn 10\).*not be per word"):
        ptb_quality.check_token_counts(expected, {**recipe, "valid": recipe["valid"] - 1})

    # batchify: word_language_model's diagram, the alphabet in 4 columns, y and z dropped
    alphabet = torch.arange(26)
    columns = baselines.batchify(alphabet, 4)
    assert columns.shape == (6, 4)
    assert columns[:, 1].tolist() == list(range(6, 12)) and columns[0].tolist() == [0, 6, 12, 18]
    inputs, targets = baselines.get_batch(columns, 0, 4)
    assert inputs.shape == (4, 4) and targets.tolist() == columns[1:5].reshape(-1).tolist()
    inputs, targets = baselines.get_batch(columns, 4, 4)  # the last slice is shorter: 6 rows leave one input row
    assert inputs.shape == (1, 4) and targets.tolist() == columns[5].tolist()

    # --quick's slices keep the whole corpus's vocabulary
    first = ptb_quality.first_lines(files["train"], tmp_path / "first.txt", 2)
    assert first.read_text(encoding="utf-8").splitlines() == PTB_LINES["train"][:2]
    sliced = baselines.Corpus(first, first, first, vocabulary_file=files["train"])
    assert sliced.dictionary.id_to_word == corpus.dictionary.id_to_word  # valid and test add no word here
    assert len(sliced.train) == sum(len(line.split()) + 1 for line in PTB_LINES["train"][:2])


def test_missing_data_is_an_error_naming_the_files(tmp_path):
    with pytest.raises(ValueError, match=r"--data-dir .*missing .*ptb/train\.txt.*ptb/test\.txt"):
        ptb_quality.ptb_files(tmp_path)
    with pytest.raises(ValueError, match=r"--data-dir .*missing .*sst2/stsa\.binary\.train"):
        sst2_quality.convert_sst2(tmp_path, tmp_path / "out")
    # the scripts themselves: exit status 2 and the message, no traceback
    for script in ("ptb_quality.py", "sst2_quality.py"):
        result = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--data-dir", str(tmp_path), "--results-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "error: --data-dir" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.glob("*.json")) == []


def test_sst2_converter_writes_what_the_classifier_recipe_reads(tmp_path):
    folder = tmp_path / "data" / "sst2"
    folder.mkdir(parents=True)
    rows = {
        "train": [
            (1, "a stirring , funny and finally transporting re-imagining"),
            (0, "null"),
            (0, 'it "wo n\'t" work'),
        ],
        "dev": [(1, "NA"), (0, "dull , dull , dull .")],
        "test": [(1, "a joy"), (0, "a\tbore")],
    }
    for split, split_rows in rows.items():
        text = "".join(f"{label} {sentence}\n" for label, sentence in split_rows) + "\n"  # a trailing blank line
        (folder / f"stsa.binary.{split}").write_text(text, encoding="utf-8")

    files = sst2_quality.convert_sst2(tmp_path / "data", tmp_path / "converted")
    assert sorted(files) == ["test", "train", "validation"]
    arguments = DataArguments(
        train_file=str(files["train"]), validation_file=str(files["validation"]), test_file=str(files["test"])
    )
    splits = load_classification_splits(arguments)  # the recipe's own reader
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        # texts such as "null" and "NA" stay texts, quotes and tabs stay inside them; labels stay integers
        assert list(zip(splits[split]["label"], splits[split]["text"])) == rows[name]
    assert sst2_quality.texts_of(files["validation"]) == ["NA", "dull , dull , dull ."]
    # words seen at least twice ("a", ",") plus the 4 special tokens
    assert sst2_quality.word_vocab_size(["a b , c", "a , d"]) == 4 + 2

    (folder / "stsa.binary.dev").write_text("1 fine\n2 not a label\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"stsa\.binary\.dev, line 2: expected '<0 or 1> <sentence>'"):
        sst2_quality.convert_sst2(tmp_path / "data", tmp_path / "converted")


def test_baseline_training_loop_anneals_and_keeps_the_best_model(ptb_dir):
    torch.manual_seed(0)
    files = ptb_quality.ptb_files(ptb_dir)
    corpus = baselines.Corpus(files["train"], files["valid"], files["test"])
    model = baselines.WordLanguageModel(len(corpus.dictionary), 8, 8, 2, 0.0)
    valid = baselines.batchify(corpus.valid, 1)
    result = baselines.train_word_language_model(
        model, corpus, budget_seconds=600, lr=20.0, bptt=5, batch_size=2, eval_batch_size=1, max_epochs=6
    )
    assert result.epochs == 6 and len(result.history) == 6  # the budget was never reached
    losses = [entry["valid_loss"] for entry in result.history]
    assert result.best_valid_loss == min(losses)
    # lr / 4 after every epoch that does not improve on the best so far
    best, lr = math.inf, 20.0
    for entry in result.history:
        assert entry["lr"] == lr
        best, lr = (entry["valid_loss"], lr) if entry["valid_loss"] < best else (best, lr / 4)
    # the returned model is the best one: its validation loss is the best recorded
    assert baselines.evaluate(model, valid, 5)[0] == pytest.approx(result.best_valid_loss, rel=1e-6)
    assert math.isfinite(result.test_perplexity) and result.test_tokens == len(corpus.test) - 1

    # a budget of 0 stops after the first batch, which is still evaluated
    stopped = baselines.train_word_language_model(model, corpus, 0, bptt=5, batch_size=2, eval_batch_size=1)
    assert stopped.steps == 1 and len(stopped.history) == 1 and 0 < stopped.epochs < 1
    # a stream too short for the evaluation batch size is an error, not a division by zero
    with pytest.raises(ValueError, match=r"1 row\(s\) of 10 columns.*smaller eval batch size"):
        baselines.train_word_language_model(model, corpus, 0, bptt=5, batch_size=2, eval_batch_size=10)


def test_trainer_log_lines_are_parsed():
    line = "{'eval_loss': '8.102', 'eval_perplexity': '3302', 'epoch': '0.01959'}\n"
    assert ptb_quality.parse_log_line(line) == {"eval_loss": 8.102, "eval_perplexity": 3302.0, "epoch": 0.01959}
    for other in ("2026-11-26 INFO hf_rnn: {x}", "{not python}", "{1, 2}", ""):
        assert ptb_quality.parse_log_line(other) is None
    assert ptb_quality.headline({"baseline": {"test_perplexity": 100.0}, "hf_rnn_stateful": {"test_perplexity": 90.0}})[
        "ratio"
    ] == pytest.approx(0.9)
