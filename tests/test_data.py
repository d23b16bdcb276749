"""hf_rnn.data: the embedded corpus is deterministic and sizeable; every source loads; every bad argument is named."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_rnn.data import MINIMUM_DOCUMENT_LENGTH, default_corpus_texts, load_text_dataset


DATA_MODULE = Path(__file__).resolve().parents[1] / "hf_rnn" / "data.py"


def corpus_digest(texts: list[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# The embedded default corpus
# ---------------------------------------------------------------------------------------------------------------------


def test_default_corpus_is_deterministic_clean_and_sizeable():
    first, second = default_corpus_texts(), default_corpus_texts()
    assert first == second
    first.clear()  # each call hands out a new list: mutating one must not change the next
    assert default_corpus_texts() == second

    assert len(second) > 2000
    assert sum(map(len, second)) > 1_000_000  # 1.6 MB on CPython 3.11
    assert len(set(second)) == len(second)  # repeats (inherited docstrings) are dropped
    for document in second:
        assert len(document) >= MINIMUM_DOCUMENT_LENGTH
        assert document == document.strip()
        assert "\n\n\n" not in document
        assert all(line == line.rstrip() for line in document.splitlines())
    # both sources are present: a pydoc topic, and a standard library docstring
    assert any(document.startswith('The "if" statement') for document in second)
    assert any("JSON" in document and "decode" in document for document in second)


def test_default_corpus_is_the_same_in_a_fresh_process(tmp_path):
    """Another interpreter, another hash seed, nothing imported beforehand: the same documents in the same order.

    The subprocess loads hf_rnn/data.py on its own, not through the package, whose `__init__` imports torch and would
    make this test take seconds longer.
    """
    code = (
        "import hashlib, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('corpus_module', {str(DATA_MODULE)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "texts = module.default_corpus_texts()\n"
        "print(hashlib.sha256('\\x00'.join(texts).encode()).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONHASHSEED": "12345", "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=False,  # the return code is asserted with stderr as the message
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == corpus_digest(default_corpus_texts())


def test_default_split_is_disjoint_complete_and_stable(tmp_path):
    corpus = default_corpus_texts()
    splits = load_text_dataset(cache_dir=tmp_path)
    assert list(splits) == ["train", "validation"]
    train, validation = list(splits["train"]["text"]), list(splits["validation"]["text"])
    assert set(train).isdisjoint(validation)
    assert sorted(train + validation) == sorted(corpus)
    assert len(validation) == round(0.05 * len(corpus))
    # both splits keep the corpus order
    position = {document: index for index, document in enumerate(corpus)}
    assert [position[text] for text in train] == sorted(position[text] for text in train)

    again = load_text_dataset(cache_dir=tmp_path)
    assert list(again["validation"]["text"]) == validation and list(again["train"]["text"]) == train
    other_seed = load_text_dataset(seed=1, cache_dir=tmp_path)
    assert list(other_seed["validation"]["text"]) != validation
    renamed = load_text_dataset(text_column="document", validation_fraction=0.1, cache_dir=tmp_path)
    assert renamed["train"].column_names == ["document"]
    assert len(renamed["validation"]) == round(0.1 * len(corpus))


# ---------------------------------------------------------------------------------------------------------------------
# Local files
# ---------------------------------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_files_give_one_row_per_line_and_drop_blank_lines(tmp_path):
    train = write(tmp_path / "train.txt", "first line\nsecond line\n\n   \nthird line, with a comma\n")
    validation = write(tmp_path / "valid.txt", "held out\n")
    splits = load_text_dataset(train_files=str(train), validation_files=[validation], cache_dir=tmp_path / "cache")
    assert list(splits["train"]["text"]) == ["first line", "second line", "third line, with a comma"]
    assert list(splits["validation"]["text"]) == ["held out"]


def test_train_files_alone_get_a_reproducible_validation_hold_out(tmp_path):
    lines = [f"line number {index}" for index in range(40)]
    train = write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    splits = load_text_dataset(train_files=[train], validation_fraction=0.25, seed=3, cache_dir=tmp_path / "cache")
    assert len(splits["validation"]) == 10 and len(splits["train"]) == 30
    assert sorted(list(splits["train"]["text"]) + list(splits["validation"]["text"])) == sorted(lines)
    again = load_text_dataset(train_files=[train], validation_fraction=0.25, seed=3, cache_dir=tmp_path / "cache")
    assert list(again["validation"]["text"]) == list(splits["validation"]["text"])


def test_csv_and_tsv_keep_other_columns(tmp_path):
    write(tmp_path / "train.csv", 'review,label\n"good, really good",1\nbad,0\n')
    write(tmp_path / "valid.csv", "review,label\nfine,1\n")
    splits = load_text_dataset(
        train_files=tmp_path / "train.csv",
        validation_files=tmp_path / "valid.csv",
        text_column="review",
        cache_dir=tmp_path / "cache",
    )
    assert list(splits["train"]["review"]) == ["good, really good", "bad"]
    assert list(splits["train"]["label"]) == [1, 0]

    # tab-separated: the commas inside the text are no separators
    write(tmp_path / "train.tsv", "text\tlabel\nhello, world\t1\ngood bye\t0\n")
    write(tmp_path / "valid.tsv", "text\tlabel\nagain, and again\t1\n")
    splits = load_text_dataset(
        train_files=tmp_path / "train.tsv", validation_files=tmp_path / "valid.tsv", cache_dir=tmp_path / "cache"
    )
    assert list(splits["train"]["text"]) == ["hello, world", "good bye"]
    assert list(splits["validation"]["text"]) == ["again, and again"]


@pytest.mark.parametrize("extension", [".json", ".jsonl"])
def test_json_lines(tmp_path, extension):
    rows = [{"body": "a first document\nover two lines", "id": 1}, {"body": "a second", "id": 2}]
    write(tmp_path / f"train{extension}", "".join(json.dumps(row) + "\n" for row in rows))
    write(tmp_path / f"valid{extension}", json.dumps({"body": "held out", "id": 3}) + "\n")
    splits = load_text_dataset(
        train_files=[tmp_path / f"train{extension}"],
        validation_files=[tmp_path / f"valid{extension}"],
        text_column="body",
        cache_dir=tmp_path / "cache",
    )
    assert list(splits["train"]["body"]) == [row["body"] for row in rows]
    assert list(splits["validation"]["id"]) == [3]


def test_a_local_dataset_folder_loads_through_dataset_name(tmp_path):
    """`dataset_name` goes to `datasets.load_dataset`, which also reads a local folder: its validation split is used."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder / "train.txt", "one\ntwo\nthree\n")
    write(folder / "validation.txt", "four\n")
    splits = load_text_dataset(str(folder), cache_dir=tmp_path / "cache")
    assert list(splits["train"]["text"]) == ["one", "two", "three"]
    assert list(splits["validation"]["text"]) == ["four"]
    with pytest.raises(ValueError, match=r"`train_split` 'nope'.*\['train', 'validation'\]"):
        load_text_dataset(str(folder), train_split="nope", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------------------------
# Errors: each names the argument to fix
# ---------------------------------------------------------------------------------------------------------------------


def test_missing_files_are_all_listed(tmp_path):
    present = write(tmp_path / "present.txt", "text\n")
    with pytest.raises(ValueError, match=r"`train_files`.*absent_1\.txt.*absent_2\.txt"):
        load_text_dataset(train_files=[present, tmp_path / "absent_1.txt", tmp_path / "absent_2.txt"])
    with pytest.raises(ValueError, match=r"`validation_files`.*absent\.txt"):
        load_text_dataset(train_files=present, validation_files=tmp_path / "absent.txt")


def test_unknown_extension_and_mixed_formats(tmp_path):
    markdown = write(tmp_path / "notes.md", "# title\n")
    with pytest.raises(ValueError, match=r"`train_files`.*unknown extension '\.md'.*\.txt, \.csv, \.tsv, \.json"):
        load_text_dataset(train_files=markdown)
    text, table = write(tmp_path / "a.txt", "x\n"), write(tmp_path / "b.csv", "text\nx\n")
    with pytest.raises(ValueError, match=r"`train_files` and `validation_files` must all have one format"):
        load_text_dataset(train_files=text, validation_files=table)


def test_text_column_must_exist_and_hold_strings(tmp_path):
    table = write(tmp_path / "train.csv", "review,label\ngood,1\nbad,0\n")
    with pytest.raises(ValueError, match=r"`text_column` 'text'.*available columns: \['review', 'label'\]"):
        load_text_dataset(train_files=table, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"`text_column` 'label'.*not strings"):
        load_text_dataset(train_files=table, text_column="label", cache_dir=tmp_path / "cache")
    lines = write(tmp_path / "train.txt", "a line\n")
    with pytest.raises(ValueError, match=r"`text_column` 'content'.*\['text'\].*\.txt files"):
        load_text_dataset(train_files=lines, text_column="content", cache_dir=tmp_path / "cache")


def test_conflicting_or_incomplete_arguments(tmp_path):
    lines = write(tmp_path / "train.txt", "a line\n")
    with pytest.raises(ValueError, match=r"`dataset_name`.*`train_files`"):
        load_text_dataset("wikitext", train_files=lines)
    with pytest.raises(ValueError, match=r"`dataset_name`.*`train_files`"):
        load_text_dataset("wikitext", validation_files=lines)
    with pytest.raises(ValueError, match=r"`validation_files` needs `train_files`"):
        load_text_dataset(validation_files=lines)
    with pytest.raises(ValueError, match=r"`dataset_config`"):
        load_text_dataset(dataset_config="wikitext-2-raw-v1")
    with pytest.raises(ValueError, match=r"`train_split`"):
        load_text_dataset(train_files=lines, validation_split="test")
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"`validation_fraction`"):
            load_text_dataset(validation_fraction=fraction)
    with pytest.raises(ValueError, match=r"`validation_fraction`.*validation_files"):  # one row cannot be split
        load_text_dataset(train_files=lines, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"`train_files` is an empty list"):
        load_text_dataset(train_files=[])
