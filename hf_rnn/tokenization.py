"""Train a tokenizer for hf_rnn models: byte-level BPE, WordPiece, Unigram, character level or word level.

```python
from hf_rnn.data import default_corpus_texts
from hf_rnn.tokenization import train_tokenizer

tokenizer = train_tokenizer(default_corpus_texts(), kind="bpe", vocab_size=8000)
tokenizer.save_pretrained("my-tokenizer")           # AutoTokenizer.from_pretrained("my-tokenizer") loads it back
```

Every tokenizer is a fast `PreTrainedTokenizerFast` whose first four ids are the special tokens, in this order:

| id | token   | role |
|----|---------|------|
| 0  | `<pad>` | padding (`pad_token_id=0`); never a training target |
| 1  | `<s>`   | beginning of sequence |
| 2  | `</s>`  | end of sequence: the language-model recipe puts one between documents |
| 3  | `<unk>` | characters (or, for "word", words) unseen in training (never produced by byte-level BPE) |

No special token is added automatically (`add_bos_token=False`, `add_eos_token=False`): `tokenizer(text)` gives the
tokens of `text` and nothing else, because the recipes place BOS/EOS themselves (an EOS between concatenated
documents). Set `tokenizer.add_eos_token = True` (or `add_bos_token`) to get them on every call. A special token's
text inside a document ("<unk>" in Penn Treebank, say) is encoded as that special token, as usual in transformers;
decoding gives the text back.

The kinds, and what decoding gives back:

- "bpe": byte-level BPE as in GPT-2. Works on the UTF-8 bytes, all 256 of which are in the vocabulary, so no text is
  unknown and `decode(encode(text)) == text` exactly for any text (newlines, tabs, runs of spaces, emoji...).
- "char": one token per character seen in training. Exact round trip for text made of those characters; any other
  character becomes `<unk>`. `vocab_size` is an upper bound here: the vocabulary is the special tokens plus exactly
  the characters seen.
- "wordpiece": BERT-style WordPiece (cased, NFC-normalized), splitting on whitespace and punctuation. Decoding
  rejoins the words with single spaces: layout (newlines, repeated spaces) is lost.
- "unigram": SentencePiece-style Unigram LM over NFC-normalized text with spaces kept as "▁". Nearly lossless for
  text of seen characters; unseen characters become `<unk>`. Its training is the slowest of the kinds.
- "word": one token per whitespace-separated word, for text that is already tokenized (Penn Treebank, SST-2): no
  normalization, no lowercasing, no punctuation split. The vocabulary is the special tokens plus the most frequent
  words, up to `vocab_size` (an upper bound, as for "char"); any other word becomes `<unk>`, and so does a literal
  "<unk>" in the text (PTB's own unknown word). Decoding joins the words with single spaces: layout is lost.
  With `vocab_size` = 4 + the number of distinct words, every word of the training text is kept: Mikolov's PTB
  (9,999 distinct words, `<unk>` among them) gives exactly its 9,998 words plus the 4 special tokens with 10002.

`hf-rnn train-tokenizer` / `python training/train_tokenizer.py` run `main`, which trains from a dataset or local files
(see `TokenizerTrainingArguments`).
"""

import logging as python_logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER
from transformers.utils import logging

from .command_utils import command_logging, parse_dataclass_arguments
from .data import load_text_dataset
from .file_utils import atomic_output_dir, check_output_dir


logger = logging.get_logger(__name__)

TOKENIZER_KINDS = ("bpe", "wordpiece", "unigram", "char", "word")
TokenizerKind = Literal["bpe", "wordpiece", "unigram", "char", "word"]

# Byte-level BPE starts from one token per byte value; its vocabulary can never be smaller than this plus the specials.
BYTE_ALPHABET_SIZE = 256


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


class _TextStream:
    """Passes the training texts on to the trainer once, checking that each is a string and counting characters.

    Counting while streaming, rather than beforehand, lets `texts` be a one-pass iterator over a large dataset.
    """

    def __init__(self, texts: Iterable[str]):
        self.texts = texts
        self.character_count = 0
        self.error: ValueError | None = None

    def __iter__(self) -> Iterator[str]:
        for index, text in enumerate(self.texts):
            if not isinstance(text, str):
                self.error = ValueError(
                    f"`texts` must contain strings only; item {index} is a {type(text).__name__}: {text!r:.80}"
                )
                raise self.error
            self.character_count += len(text)
            yield text

    def check_not_empty(self) -> None:
        if self.character_count == 0:
            raise ValueError("`texts` holds no text (no item, or only empty strings): a tokenizer needs training text.")


def _trainer_arguments(vocab_size: int, special_tokens: list[str]) -> dict:
    return {
        "vocab_size": vocab_size,
        "special_tokens": special_tokens,  # in this order, so they get ids 0, 1, 2, 3
        # Progress bars only when info-level logs are on (the training script turns them on; a library call stays quiet)
        "show_progress": logger.isEnabledFor(python_logging.INFO),
    }


def _train_subword_backend(stream: _TextStream, kind: str, vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    unk_token = special_tokens[3]
    if kind == "bpe":
        backend = Tokenizer(models.BPE())  # no unk token: every byte has its own token
        # No normalizer: byte-exact round trip. add_prefix_space=False: a text's first word keeps no invented space.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            **_trainer_arguments(vocab_size, special_tokens),
            min_frequency=2,  # a merge seen once is noise
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even those absent from the text
        )
    elif kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(unk_token=unk_token))
        backend.normalizer = normalizers.NFC()  # one code point sequence per visible character; case is kept
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(
            **_trainer_arguments(vocab_size, special_tokens), min_frequency=2, continuing_subword_prefix="##"
        )
    else:  # unigram
        backend = Tokenizer(models.Unigram())
        backend.normalizer = normalizers.NFC()
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(**_trainer_arguments(vocab_size, special_tokens), unk_token=unk_token)
    try:
        backend.train_from_iterator(stream, trainer=trainer)
    except Exception as error:
        if stream.error is not None:
            raise stream.error from None
        stream.check_not_empty()
        if "not large enough to contain all chars" in str(error):  # the Unigram trainer's own check
            raise ValueError(
                f"`vocab_size`={vocab_size} is too small for kind 'unigram': the characters of the training text plus "
                f"the {len(special_tokens)} special tokens do not fit; raise it."
            ) from error
        raise
    stream.check_not_empty()
    return backend


def _train_char_backend(stream: _TextStream, vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    counts = Counter()
    for text in stream:
        counts.update(text)
    stream.check_not_empty()
    # Sorted by code point so that the same text always gives the same ids; a special token that is a single
    # character keeps its special id.
    alphabet = sorted(character for character in counts if character not in special_tokens)
    if len(special_tokens) + len(alphabet) > vocab_size:
        raise ValueError(
            f"`vocab_size`={vocab_size} is too small for kind 'char': the training text has {len(alphabet)} distinct "
            f"characters, which with the {len(special_tokens)} special tokens need "
            f"vocab_size >= {len(special_tokens) + len(alphabet)}."
        )
    vocabulary = {token: index for index, token in enumerate(special_tokens + alphabet)}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=special_tokens[3]))
    # Every code point on its own ([\s\S] also matches newlines, which "." would not); no normalizer, for exactness.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()  # concatenate the characters (the default decoder would put spaces between)
    return backend


def _train_word_backend(stream: _TextStream, vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # whitespace only: the text is already tokenized
    counts = Counter()
    for text in stream:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(text))
    stream.check_not_empty()
    # The vocabulary WordLevelTrainer would choose (most frequent first, ties by code point, so the same text always
    # gives the same ids), counted here because that trainer gives a special token found in the text ("<unk>" in PTB)
    # a second id and leaves a hole in the ids. Special tokens in the text are no words: they keep their special id.
    words = sorted((word for word in counts if word not in special_tokens), key=lambda word: (-counts[word], word))
    kept = special_tokens + words[: vocab_size - len(special_tokens)]  # the most frequent words: rare ones -> <unk>
    vocabulary = {token: index for index, token in enumerate(kept)}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token=special_tokens[3]))
    backend.pre_tokenizer = pre_tokenizer
    # no decoder: the tokenizer's default joins the words with single spaces
    return backend


def _check_tokenizer_arguments(kind: str, vocab_size: int, special_tokens: list[str]) -> None:
    """The checks that need no text, so that the training script can make them before loading any data."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"Unknown tokenizer `kind` {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}.")
    for name, token in zip(("pad_token", "bos_token", "eos_token", "unk_token"), special_tokens):
        if not isinstance(token, str) or not token:
            raise ValueError(f"`{name}` must be a non-empty string, got {token!r}.")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"The special tokens (pad, bos, eos, unk) must be distinct, got {special_tokens}.")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= len(special_tokens):
        raise ValueError(f"`vocab_size` must be an integer above {len(special_tokens)}, got {vocab_size!r}.")
    if kind == "bpe" and vocab_size < BYTE_ALPHABET_SIZE + len(special_tokens):
        raise ValueError(
            f"`vocab_size`={vocab_size} is too small for kind 'bpe': its alphabet is all {BYTE_ALPHABET_SIZE} byte "
            f"values, which with the {len(special_tokens)} special tokens need vocab_size >= "
            f"{BYTE_ALPHABET_SIZE + len(special_tokens)} (and more to leave room for merges)."
        )


def train_tokenizer(
    texts: Iterable[str],
    kind: TokenizerKind = "bpe",
    vocab_size: int = 8000,
    *,
    pad_token: str = "<pad>",
    bos_token: str = "<s>",
    eos_token: str = "</s>",
    unk_token: str = "<unk>",
) -> PreTrainedTokenizerFast:
    """Train a tokenizer of `kind` on `texts` and wrap it as a fast transformers tokenizer.

    Args:
        texts (`Iterable[str]`): the training documents: a list, or any one-pass iterator (e.g. a generator over a
            `datasets.Dataset` column), so a large corpus need not fit in memory.
        kind (`str`, defaults to "bpe"): one of "bpe", "wordpiece", "unigram", "char", "word" (see the module
            docstring).
        vocab_size (`int`, defaults to 8000): size of the vocabulary, special tokens included. The trainers may stop
            below it on little text; for "char" and "word" it is only an upper bound. Byte-level BPE needs at least
            260 (256 bytes + 4 specials); WordPiece, Unigram and char need room for every character of the text (a
            `ValueError` says how much); "word" keeps the `vocab_size` - 4 most frequent words.
        pad_token, bos_token, eos_token, unk_token (`str`): the special tokens, given ids 0, 1, 2, 3 in this order.

    Returns:
        `PreTrainedTokenizerFast` with the four special tokens set, `model_max_length` unlimited (recurrent models have
        no position limit), no special token added automatically, and `clean_up_tokenization_spaces=False` (that
        clean-up would turn " ." into "." and break exact round trips). `save_pretrained` /
        `AutoTokenizer.from_pretrained` give it back, fast, with the same ids.

    Raises:
        ValueError: for an unknown `kind`, a `vocab_size` too small for the alphabet and special tokens, special tokens
            that are empty or not distinct, `texts` given as a single string, an item that is not a string, or no
            training text at all.
    """
    special_tokens = [pad_token, bos_token, eos_token, unk_token]
    _check_tokenizer_arguments(kind, vocab_size, special_tokens)
    if isinstance(texts, (str, bytes)):
        raise ValueError("`texts` is a single string; pass a list (or iterator) of strings, one per document.")

    stream = _TextStream(texts)
    if kind == "char":
        backend = _train_char_backend(stream, vocab_size, special_tokens)
    elif kind == "word":
        backend = _train_word_backend(stream, vocab_size, special_tokens)
    else:
        backend = _train_subword_backend(stream, kind, vocab_size, special_tokens)
    # The trainers keep the whole alphabet even when it does not fit: refuse rather than silently exceed vocab_size.
    if backend.get_vocab_size() > vocab_size:
        raise ValueError(
            f"`vocab_size`={vocab_size} is too small for kind {kind!r} on this text: the alphabet alone (every "
            f"character{', and its ##-continuation form' if kind == 'wordpiece' else ''}) plus the "
            f"{len(special_tokens)} special tokens take {backend.get_vocab_size()} entries; use at least that, and "
            "more to leave room for merges."
        )
    for expected_id, token in enumerate(special_tokens):
        if backend.token_to_id(token) != expected_id:  # the wrapper and the models rely on pad_token_id == 0, ...
            raise RuntimeError(f"Special token {token!r} got id {backend.token_to_id(token)}, not {expected_id}.")

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad_token,
        bos_token=bos_token,
        eos_token=eos_token,
        unk_token=unk_token,
        model_max_length=VERY_LARGE_INTEGER,  # transformers' "no limit": no truncation warning on long documents
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
    )
    logger.info(f"Trained a {kind} tokenizer with {len(tokenizer)} tokens on {stream.character_count:,} characters.")
    return tokenizer


# ---------------------------------------------------------------------------------------------------------------------
# Command line: hf-rnn train-tokenizer / python training/train_tokenizer.py
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class TokenizerTrainingArguments:
    """Arguments of `run_train_tokenizer` (and, as `--name value` options, of the training script)."""

    output_dir: str = field(
        metadata={"help": "Folder to save the tokenizer to (created; must be empty or absent unless --overwrite)."}
    )
    kind: TokenizerKind = field(
        default="bpe",
        metadata={
            "help": "bpe (byte-level, lossless), wordpiece, unigram, char (character level) or word (whitespace-"
            "separated words of already tokenized text)."
        },
    )
    vocab_size: int = field(
        default=8000, metadata={"help": "Vocabulary size, special tokens included (for char and word: an upper bound)."}
    )
    pad_token: str = field(default="<pad>", metadata={"help": "Padding token, id 0."})
    bos_token: str = field(default="<s>", metadata={"help": "Beginning-of-sequence token, id 1."})
    eos_token: str = field(default="</s>", metadata={"help": "End-of-sequence token, id 2."})
    unk_token: str = field(default="<unk>", metadata={"help": "Unknown token, id 3."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id or local dataset folder (default: the embedded corpus)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_files: list[str] | None = field(
        default=None, metadata={"help": "Local .txt/.csv/.tsv/.json/.jsonl files to train on, instead of a dataset."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    # The tokenizer learns from the train split only. Keep these equal to the language-model recipe's, so that its
    # validation text is never seen by the tokenizer either.
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Share held out for validation when the data has no validation split."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of that hold-out."})
    max_texts: int | None = field(
        default=None, metadata={"help": "Train on at most this many texts (the first ones): quick runs and tests."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing non-empty output_dir."})


def run_train_tokenizer(args: TokenizerTrainingArguments) -> PreTrainedTokenizerFast:
    """Load the texts `args` name (`load_text_dataset`), train a tokenizer on the train split, save it to `output_dir`.

    The tokenizer is written to a temporary folder next to `output_dir` and renamed to it once complete, so a failed
    run leaves no half-written `output_dir`. Returns the trained tokenizer.
    """
    if args.max_texts is not None and args.max_texts < 1:
        raise ValueError(f"`max_texts` must be at least 1 when given, got {args.max_texts}.")
    # Everything that can be checked without the data is checked first, so that a doomed run fails at once.
    special_tokens = [args.pad_token, args.bos_token, args.eos_token, args.unk_token]
    _check_tokenizer_arguments(args.kind, args.vocab_size, special_tokens)
    output_dir = Path(args.output_dir).absolute()
    check_output_dir(output_dir, args.overwrite)
    splits = load_text_dataset(
        dataset_name=args.dataset_name,
        dataset_config=args.dataset_config,
        train_files=args.train_files,
        text_column=args.text_column,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )
    train = splits["train"]
    if args.max_texts is not None:
        train = train.select(range(min(args.max_texts, len(train))))

    def texts() -> Iterator[str]:
        # Batches of rows rather than the whole column at once: a large dataset streams from its Arrow file.
        for batch in train.iter(batch_size=1000):
            yield from batch[args.text_column]

    tokenizer = train_tokenizer(
        texts(),
        kind=args.kind,
        vocab_size=args.vocab_size,
        pad_token=args.pad_token,
        bos_token=args.bos_token,
        eos_token=args.eos_token,
        unk_token=args.unk_token,
    )
    with atomic_output_dir(output_dir, args.overwrite) as staging:
        tokenizer.save_pretrained(staging)
    logger.info(f"Saved the {args.kind} tokenizer ({len(tokenizer)} tokens, {len(train)} texts) to {output_dir}")
    return tokenizer


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: parse `argv` (default: `sys.argv[1:]`) into `TokenizerTrainingArguments`, train, save.

    Returns the exit status (0). Invalid arguments raise `ValueError`; `--help` exits through `SystemExit`.
    """
    (args,) = parse_dataclass_arguments(
        (TokenizerTrainingArguments,), argv, "Train a tokenizer for hf_rnn models and save it with save_pretrained."
    )
    # shows hf_rnn's info lines, and the tokenizer trainers' progress bars (see `_trainer_arguments`)
    with command_logging():
        run_train_tokenizer(args)
    return 0


__all__ = [
    "TOKENIZER_KINDS",
    "TokenizerKind",
    "TokenizerTrainingArguments",
    "main",
    "run_train_tokenizer",
    "train_tokenizer",
]
