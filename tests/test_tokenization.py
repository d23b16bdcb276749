"""hf_rnn.tokenization: every kind trains, saves and reloads as a fast tokenizer with ids 0..3 for the special tokens;
byte-level BPE round-trips any text exactly, char any text of seen characters, word the words of tokenized text (PTB's
"<unk>" included); the training script works end to end."""

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from hf_rnn.cli import main as cli_main
from hf_rnn.data import default_corpus_texts
from hf_rnn.tokenization import (
    TOKENIZER_KINDS,
    TokenizerTrainingArguments,
    main,
    run_train_tokenizer,
    train_tokenizer,
)


SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_tokenizer.py"
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
# Small enough that each kind trains in well under a second, large enough for the alphabet of ~30 KB of text
# (about 90 characters; WordPiece also needs their ##-continuation forms); "word" keeps the 496 most frequent words.
VOCAB_SIZES = {"bpe": 300, "wordpiece": 400, "unigram": 300, "char": 200, "word": 500}

TRICKY_TEXTS = [
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\r\nwindows\rline ends\n\n\n",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧 (ZWJ), flags 🇫🇷",
    "combining e\u0301 vs precomposed é; NFC and NFD both kept",
    "日本語のテキスト, 中文, 한국어, العربية, עברית",
    "\x00 control \x07 characters \x1b[31m",
    "zero\u200bwidth space, non\u00a0breaking space, \ufeffbyte order mark",
    "literal special tokens: <s> </s> <pad> <unk>",
    "def f(x):\n    return {'a': [1, 2.5e-3]}  # comment\n",
]


@pytest.fixture(scope="module")
def small_texts() -> list[str]:
    """The first ~30 KB of the default corpus (pydoc topics: prose mixed with code)."""
    texts, size = [], 0
    for text in default_corpus_texts():
        texts.append(text)
        size += len(text)
        if size > 30_000:
            return texts
    return texts


@pytest.fixture(scope="module")
def trained(small_texts):
    """One tokenizer of each kind, trained once for the module."""
    return {kind: train_tokenizer(small_texts, kind, VOCAB_SIZES[kind]) for kind in TOKENIZER_KINDS}


# ---------------------------------------------------------------------------------------------------------------------
# Every kind
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_kind_trains_saves_and_reloads_fast_with_special_token_ids(trained, kind, tmp_path):
    tokenizer = trained[kind]
    assert tokenizer.is_fast
    assert 4 < len(tokenizer) <= VOCAB_SIZES[kind]
    assert tokenizer.model_max_length >= 10**20  # recurrent models have no length limit
    sample = "The quick brown fox jumps over the lazy dog, twice."
    sample_ids = tokenizer(sample)["input_ids"]
    assert all(index not in (0, 1, 2) for index in sample_ids)  # no BOS/EOS/pad added automatically

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.is_fast
    assert len(reloaded) == len(tokenizer)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    for tokenizer_ in (tokenizer, reloaded):
        assert (tokenizer_.pad_token_id, tokenizer_.bos_token_id, tokenizer_.eos_token_id, tokenizer_.unk_token_id) == (
            0,
            1,
            2,
            3,
        )
        assert (tokenizer_.pad_token, tokenizer_.bos_token, tokenizer_.eos_token, tokenizer_.unk_token) == tuple(
            SPECIAL_TOKENS.values()
        )
    assert reloaded(sample)["input_ids"] == sample_ids
    assert reloaded.decode(sample_ids) == tokenizer.decode(sample_ids)
    # padding uses id 0, on the right by default
    batch = reloaded(["a b", "a much longer text"], padding=True)
    assert batch["input_ids"][0][-1] == 0 and batch["attention_mask"][0][-1] == 0


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_bos_and_eos_only_on_request(trained, kind, tmp_path):
    tokenizer = trained[kind]
    plain = tokenizer("some text")["input_ids"]
    tokenizer.save_pretrained(tmp_path)
    requested = AutoTokenizer.from_pretrained(tmp_path)
    requested.add_bos_token = True
    requested.add_eos_token = True
    assert requested("some text")["input_ids"] == [1] + plain + [2]
    assert tokenizer("some text")["input_ids"] == plain  # the original is untouched


def test_custom_special_tokens_take_ids_0_to_3(small_texts, tmp_path):
    special_tokens = {"pad_token": "[PAD]", "bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": "[UNK]"}
    tokenizer = train_tokenizer(small_texts, "char", 200, **special_tokens)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for index, (name, token) in enumerate(special_tokens.items()):
        assert getattr(reloaded, name) == token
        assert reloaded.convert_tokens_to_ids(token) == index


# ---------------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_byte_level_bpe_round_trips_tricky_text(trained, text):
    tokenizer = trained["bpe"]
    ids = tokenizer(text)["input_ids"]
    if "<unk>" not in text:  # a literal special-token string is encoded as that token (PTB writes "<unk>" itself)
        assert tokenizer.unk_token_id not in ids  # every byte has a token
    assert tokenizer.decode(ids) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))  # any code point but surrogates, which no UTF-8 text can hold
def test_byte_level_bpe_round_trips_any_text(trained, text):
    tokenizer = trained["bpe"]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_char_round_trips_a_whole_document(trained, small_texts):
    tokenizer = trained["char"]
    for text in small_texts[:3]:
        ids = tokenizer(text)["input_ids"]
        assert len(ids) == len(text)  # one token per character
        assert tokenizer.decode(ids) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_char_round_trips_text_of_seen_characters(trained, small_texts, data):
    alphabet = sorted(set("".join(small_texts)))
    text = data.draw(st.text(alphabet=alphabet, max_size=200))
    tokenizer = trained["char"]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_char_maps_unseen_characters_to_unk(trained):
    tokenizer = trained["char"]
    ids = tokenizer("a😀b")["input_ids"]
    assert ids[1] == tokenizer.unk_token_id and len(ids) == 3
    assert tokenizer.decode(ids) == "a<unk>b"


def test_wordpiece_and_unigram_keep_the_words(trained):
    text = "The function returns the value of the expression."
    assert trained["wordpiece"].decode(trained["wordpiece"](text)["input_ids"]) == text
    assert trained["unigram"].decode(trained["unigram"](text)["input_ids"]) == text


# ---------------------------------------------------------------------------------------------------------------------
# Word level: already tokenized text (Penn Treebank, SST-2)
# ---------------------------------------------------------------------------------------------------------------------

WORD_TEXTS = [
    " the cat sat on the mat ",  # PTB's lines start and end with a space
    "The cat wo n't sit\tstill , however re-imagining it\n",  # no lowercasing, no punctuation split
    "pierre <unk> N years old will join the board",  # PTB writes its own unknown word "<unk>"
    "the <unk> <unk> cat",
]


def test_word_round_trips_seen_words_and_maps_unseen_ones_to_unk(tmp_path):
    tokenizer = train_tokenizer(WORD_TEXTS, "word", 100)
    words = " ".join(WORD_TEXTS).split()
    seen = [word for word in words if word != "<unk>"]
    assert len(tokenizer) == 4 + len(set(seen))  # an upper bound: every distinct word, and no more
    for text in WORD_TEXTS[:2]:
        ids = tokenizer(text)["input_ids"]
        assert len(ids) == len(text.split()) and tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == " ".join(text.split())  # words joined by single spaces
    assert tokenizer.convert_ids_to_tokens(tokenizer("The the n't ,")["input_ids"]) == ["The", "the", "n't", ","]

    ids = tokenizer("the dog sat on a mat")["input_ids"]
    assert [index == tokenizer.unk_token_id for index in ids] == [False, True, False, False, True, False]
    assert tokenizer.decode(ids) == "the <unk> sat on <unk> mat"

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("the dog sat on a mat")["input_ids"] == ids


def test_word_maps_a_literal_unk_to_the_unk_id():
    tokenizer = train_tokenizer(WORD_TEXTS, "word", 100)
    vocabulary = tokenizer.get_vocab()
    assert vocabulary["<unk>"] == 3 == tokenizer.unk_token_id
    assert sorted(vocabulary.values()) == list(range(len(vocabulary)))  # no second "<unk>" entry, no hole in the ids
    ids = tokenizer("pierre <unk> N years")["input_ids"]
    assert ids[1] == 3 and 3 not in (ids[0], *ids[2:])
    # "<unk>" is the most frequent word of the text (3 times): it still takes no slot among the kept words
    small = train_tokenizer(WORD_TEXTS, "word", 5)
    assert small.convert_ids_to_tokens([4]) == ["the"] and len(small) == 5


def test_word_vocab_size_keeps_the_most_frequent_words():
    texts = ["a a a a b b b c c d", "e e f"]  # counts a 4, b 3, c 2, e 2, d 1, f 1
    tokenizer = train_tokenizer(texts, "word", 4 + 4)
    # most frequent first, ties by code point (c before e): the same text always gives the same ids
    assert tokenizer.convert_ids_to_tokens(list(range(4, 8))) == ["a", "b", "c", "e"]
    assert tokenizer("d f a")["input_ids"] == [3, 3, 4]
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer above 4"):
        train_tokenizer(texts, "word", 4)


def test_word_keeps_exactly_the_words_of_a_ptb_like_text():
    # Mikolov's PTB: a closed vocabulary of 10,000 (9,999 words, "<unk>" among them, + word_language_model's <eos>);
    # here 9,999 distinct words with Zipf-like counts, one of them "<unk>", every word at least once.
    generator = random.Random(0)
    vocabulary = ["<unk>"] + [f"w{index}" for index in range(9_998)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    words = vocabulary + generator.choices(vocabulary, weights=weights, k=60_000)
    generator.shuffle(words)
    lines = [" " + " ".join(words[start : start + 20]) + " " for start in range(0, len(words), 20)]

    tokenizer = train_tokenizer(lines, "word", 4 + 9_998)
    assert len(tokenizer) == 10_002
    assert set(tokenizer.get_vocab()) == {"<pad>", "<s>", "</s>"} | set(vocabulary)
    ids = [index for line in lines for index in tokenizer(line)["input_ids"]]
    assert len(ids) == len(words)  # one token per word: perplexities per token are per word
    assert sum(index == tokenizer.unk_token_id for index in ids) == words.count("<unk>")
    assert tokenizer.decode(tokenizer(lines[0])["input_ids"]) == lines[0].strip()
    # one slot fewer drops exactly one word, a least frequent one
    smaller = train_tokenizer(lines, "word", 4 + 9_997)
    dropped = set(tokenizer.get_vocab()) - set(smaller.get_vocab())
    assert len(dropped) == 1 and words.count(dropped.pop()) == 1


def test_cli_trains_a_word_tokenizer(tmp_path, capsys):
    corpus = tmp_path / "train.txt"
    # counts the 50, sat 30, mat 20, cat 10 over 20 lines: the line the recipe holds out for validation (5 %) changes
    # no count's order
    corpus.write_text(" the the the the cat sat sat sat \n the <unk> mat mat \n" * 10, encoding="utf-8")
    output_dir = tmp_path / "word"
    arguments = ["--kind", "word", "--vocab_size", "10", "--train_files", str(corpus), "--output_dir", str(output_dir)]
    status = cli_main(["train-tokenizer", *arguments])
    assert status == 0, capsys.readouterr().err
    reloaded = AutoTokenizer.from_pretrained(output_dir)
    tokens = reloaded.convert_ids_to_tokens(list(range(len(reloaded))))
    assert tokens == ["<pad>", "<s>", "</s>", "<unk>", "the", "sat", "mat", "cat"]
    assert reloaded("the dog <unk> sat")["input_ids"] == [4, 3, 3, 5]


# ---------------------------------------------------------------------------------------------------------------------
# Errors: each names what to fix
# ---------------------------------------------------------------------------------------------------------------------


def test_invalid_arguments_are_refused(small_texts):
    with pytest.raises(ValueError, match=r"`kind` 'sentencepiece'.*bpe, wordpiece, unigram, char"):
        train_tokenizer(small_texts, "sentencepiece", 300)
    with pytest.raises(ValueError, match=r"`vocab_size`=259.*'bpe'.*>= 260"):
        train_tokenizer(small_texts, "bpe", 259)
    with pytest.raises(ValueError, match=r"`vocab_size`=50.*'char'.*distinct characters.*>= "):
        train_tokenizer(small_texts, "char", 50)
    with pytest.raises(ValueError, match=r"`vocab_size`=100.*'wordpiece'.*alphabet"):
        train_tokenizer(small_texts, "wordpiece", 100)
    with pytest.raises(ValueError, match=r"`vocab_size`=50.*'unigram'"):
        train_tokenizer(small_texts[:1], "unigram", 50)
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer"):
        train_tokenizer(small_texts, "char", 4)
    with pytest.raises(ValueError, match=r"special tokens.*distinct"):
        train_tokenizer(small_texts, "char", 200, pad_token="<s>")
    with pytest.raises(ValueError, match=r"`unk_token` must be a non-empty string"):
        train_tokenizer(small_texts, "char", 200, unk_token="")


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_empty_or_malformed_texts_are_refused(kind):
    vocab_size = VOCAB_SIZES[kind]
    for empty in ([], ["", ""], iter([])):
        with pytest.raises(ValueError, match=r"`texts` holds no text"):
            train_tokenizer(empty, kind, vocab_size)
    with pytest.raises(ValueError, match=r"`texts` must contain strings only; item 1 is a NoneType"):
        train_tokenizer(["a text", None], kind, vocab_size)
    with pytest.raises(ValueError, match=r"`texts` is a single string"):
        train_tokenizer("a text", kind, vocab_size)


# ---------------------------------------------------------------------------------------------------------------------
# The training script and its in-package entry points
# ---------------------------------------------------------------------------------------------------------------------


def test_script_trains_and_saves_a_loadable_tokenizer(tmp_path, hf_env):
    output_dir = tmp_path / "tokenizer"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--kind",
            "bpe",
            "--vocab_size",
            "300",
            "--output_dir",
            str(output_dir),
            "--max_texts",
            "200",
        ],
        env=hf_env,
        capture_output=True,
        text=True,
        check=False,  # the return code is asserted with stderr as the message
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Saved the bpe tokenizer (300 tokens, 200 texts)" in result.stderr
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no staging folder left
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.is_fast and len(tokenizer) == 300 and tokenizer.pad_token_id == 0
    text = "Round trip:\n\tany text 😀"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_run_train_tokenizer_from_local_files(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {index}: the cat sat on the mat." for index in range(50)), encoding="utf-8")
    output_dir = tmp_path / "out" / "char-tokenizer"  # the parent folder is created too
    arguments = TokenizerTrainingArguments(
        output_dir=str(output_dir), kind="char", vocab_size=100, train_files=[str(corpus)]
    )
    tokenizer = run_train_tokenizer(arguments)
    reloaded = AutoTokenizer.from_pretrained(output_dir)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.decode(reloaded("the cat sat")["input_ids"]) == "the cat sat"

    # an existing non-empty output_dir is refused before any work, and replaced with overwrite=True
    with pytest.raises(ValueError, match=r"`output_dir`.*not empty.*overwrite"):
        run_train_tokenizer(arguments)
    arguments.overwrite, arguments.kind, arguments.vocab_size = True, "bpe", 270
    run_train_tokenizer(arguments)
    assert len(AutoTokenizer.from_pretrained(output_dir)) > 100  # byte-level now
    assert sorted(path.name for path in output_dir.parent.iterdir()) == ["char-tokenizer"]


def test_a_failed_run_leaves_no_output_dir(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {index}" for index in range(20)), encoding="utf-8")
    output_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=r"`vocab_size`"):
        main(["--output_dir", str(output_dir), "--kind", "char", "--vocab_size", "5", "--train_files", str(corpus)])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus.txt"]


def test_main_parses_arguments(tmp_path):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("id\tsentence\n" + "".join(f"{index}\tsentence number {index}\n" for index in range(30)))
    output_dir = tmp_path / "wordpiece"
    status = main(
        [
            "--output_dir",
            str(output_dir),
            "--kind",
            "wordpiece",
            "--vocab_size",
            "120",
            "--train_files",
            str(corpus),
            "--text_column",
            "sentence",
            "--unk_token",
            "[UNK]",
        ]
    )
    assert status == 0
    reloaded = AutoTokenizer.from_pretrained(output_dir)
    assert reloaded.unk_token == "[UNK]" and reloaded.unk_token_id == 3
    with pytest.raises(SystemExit):  # argparse refuses an unknown kind
        main(["--output_dir", str(output_dir), "--kind", "sentencepiece"])
