"""Text data for the training recipes: an embedded default corpus and one loader for Hub or local datasets.

```python
from hf_rnn.data import load_text_dataset

splits = load_text_dataset()                                        # embedded default corpus, offline
splits = load_text_dataset(train_files="train.txt", validation_files="valid.txt")   # one line per row
splits = load_text_dataset(train_files=["reviews.csv"], text_column="review")       # 5 % held out for validation
splits = load_text_dataset("wikitext", "wikitext-2-raw-v1")          # a Hub dataset (needs network or its cache)
splits["train"][0]["text"]
```

Every source gives a `datasets.DatasetDict` with exactly two splits, "train" and "validation", whose `text_column`
holds strings; other columns (labels, ...) are kept.
"""

import ast
import os
import re
import sysconfig
import tokenize
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import datasets
import numpy
from transformers.utils import logging


logger = logging.get_logger(__name__)

# Documents shorter than this are dropped from the default corpus: one-line stubs ("Return self.", "Initialize
# self.") carry almost no language and would only inflate the document count.
MINIMUM_DOCUMENT_LENGTH = 40

# Standard library modules whose docstrings make up most of the default corpus, sorted: pure-Python source files,
# with prose-rich docstrings, present in every CPython from 3.10 on (a module a given version lacks, such as
# `tomllib` before 3.11, is skipped). Their source is read, never imported (see `_docstrings_of_module`).
DEFAULT_CORPUS_MODULES = (
    "__future__",
    "_pydecimal",
    "_pyio",
    "abc",
    "argparse",
    "ast",
    "asyncio.base_events",
    "asyncio.base_subprocess",
    "asyncio.coroutines",
    "asyncio.events",
    "asyncio.exceptions",
    "asyncio.futures",
    "asyncio.locks",
    "asyncio.mixins",
    "asyncio.protocols",
    "asyncio.queues",
    "asyncio.runners",
    "asyncio.selector_events",
    "asyncio.sslproto",
    "asyncio.staggered",
    "asyncio.streams",
    "asyncio.subprocess",
    "asyncio.taskgroups",
    "asyncio.tasks",
    "asyncio.timeouts",
    "asyncio.transports",
    "asyncio.trsock",
    "asyncio.unix_events",
    "base64",
    "bdb",
    "bisect",
    "bz2",
    "cProfile",
    "calendar",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "collections.abc",
    "colorsys",
    "compileall",
    "concurrent.futures._base",
    "concurrent.futures.process",
    "concurrent.futures.thread",
    "configparser",
    "contextlib",
    "copy",
    "copyreg",
    "csv",
    "ctypes",
    "dataclasses",
    "datetime",
    "dbm",
    "dbm.dumb",
    "difflib",
    "dis",
    "doctest",
    "email._header_value_parser",
    "email._parseaddr",
    "email._policybase",
    "email.base64mime",
    "email.charset",
    "email.contentmanager",
    "email.encoders",
    "email.errors",
    "email.feedparser",
    "email.generator",
    "email.header",
    "email.headerregistry",
    "email.iterators",
    "email.message",
    "email.mime.base",
    "email.mime.multipart",
    "email.mime.text",
    "email.parser",
    "email.policy",
    "email.quoprimime",
    "email.utils",
    "encodings.idna",
    "encodings.punycode",
    "enum",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "http",
    "http.client",
    "http.cookiejar",
    "http.cookies",
    "http.server",
    "imaplib",
    "importlib",
    "importlib.abc",
    "importlib.machinery",
    "importlib.metadata",
    "importlib.resources",
    "importlib.util",
    "inspect",
    "ipaddress",
    "json",
    "json.decoder",
    "json.encoder",
    "keyword",
    "linecache",
    "locale",
    "logging",
    "logging.config",
    "logging.handlers",
    "lzma",
    "mailbox",
    "mimetypes",
    "modulefinder",
    "multiprocessing.connection",
    "multiprocessing.context",
    "multiprocessing.heap",
    "multiprocessing.managers",
    "multiprocessing.pool",
    "multiprocessing.process",
    "multiprocessing.queues",
    "multiprocessing.reduction",
    "multiprocessing.resource_tracker",
    "multiprocessing.shared_memory",
    "multiprocessing.spawn",
    "multiprocessing.synchronize",
    "multiprocessing.util",
    "netrc",
    "ntpath",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "py_compile",
    "pyclbr",
    "pydoc",
    "queue",
    "quopri",
    "random",
    "re",
    "reprlib",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "symtable",
    "sysconfig",
    "tabnanny",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "types",
    "typing",
    "unittest.async_case",
    "unittest.case",
    "unittest.loader",
    "unittest.main",
    "unittest.mock",
    "unittest.result",
    "unittest.runner",
    "unittest.suite",
    "unittest.util",
    "urllib.error",
    "urllib.parse",
    "urllib.request",
    "urllib.response",
    "urllib.robotparser",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "wsgiref.handlers",
    "wsgiref.headers",
    "wsgiref.simple_server",
    "wsgiref.util",
    "wsgiref.validate",
    "xml.dom.domreg",
    "xml.dom.expatbuilder",
    "xml.dom.minicompat",
    "xml.dom.minidom",
    "xml.dom.pulldom",
    "xml.etree.ElementInclude",
    "xml.etree.ElementPath",
    "xml.etree.ElementTree",
    "xml.sax",
    "xml.sax.handler",
    "xml.sax.saxutils",
    "xml.sax.xmlreader",
    "xmlrpc.client",
    "xmlrpc.server",
    "zipapp",
    "zipfile",
    "zipimport",
    "zoneinfo",
)

# File extension -> (`datasets` builder, extra builder arguments).
FILE_FORMATS = {
    ".txt": ("text", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}


# ---------------------------------------------------------------------------------------------------------------------
# Embedded default corpus
# ---------------------------------------------------------------------------------------------------------------------


def _clean_document(text: str) -> str:
    """Strip trailing spaces from every line and the document's ends, and collapse runs of blank lines into one."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _docstrings_of_module(module_name: str, standard_library: Path) -> list[str]:
    """Docstrings of a standard library module, read from its source: the module's, then those of every class and
    function (methods and nested definitions included) in source order, cleaned by `ast.get_docstring`.

    Why the source rather than `inspect.getdoc` on the imported objects: imported modules are shared with the rest of
    the process, and other libraries patch them (importing torch replaces `inspect.getfile`), so the objects found
    would depend on what was imported before. The source depends only on the Python installation, and reading it
    has no side effects (no import-time warnings, no atexit hooks) and still works under `python -OO`.
    """
    base = standard_library.joinpath(*module_name.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    if not path.is_file():
        logger.info(f"Default corpus: skipping {module_name!r}, which this Python installation lacks.")
        return []
    with tokenize.open(path) as source_file:  # honours a coding declaration, as Python does
        tree = ast.parse(source_file.read(), filename=str(path))

    documents = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            documents.append(ast.get_docstring(node, clean=True))
        # Definitions sit in statement lists (also under `if`/`try`/`with`/`match`); expressions hold none, so only
        # those lists are entered, which is much faster than visiting every node.
        for field in ("body", "handlers", "orelse", "finalbody", "cases"):  # source order
            for child in getattr(node, field, ()):
                visit(child)

    visit(tree)
    return [document for document in documents if document]


@lru_cache(maxsize=1)
def _build_default_corpus() -> tuple[str, ...]:
    from pydoc_data.topics import topics  # the text of help("if"), help("FORMATTING"), ...

    raw_documents = [topics[key] for key in sorted(topics)]
    standard_library = Path(sysconfig.get_paths()["stdlib"])
    for module_name in DEFAULT_CORPUS_MODULES:
        raw_documents.extend(_docstrings_of_module(module_name, standard_library))
    if len(raw_documents) == len(topics):
        logger.warning_once(
            f"No standard library source found under {standard_library}: the default corpus holds only the pydoc "
            "topics (about 0.5 MB instead of about 1.6 MB)."
        )

    documents, seen = [], set()
    for raw_document in raw_documents:
        document = _clean_document(raw_document)
        # Docstrings repeat (overrides copying their base's text, one definition per platform): keep the first.
        if len(document) >= MINIMUM_DOCUMENT_LENGTH and document not in seen:
            seen.add(document)
            documents.append(document)
    return tuple(documents)


def default_corpus_texts() -> list[str]:
    """The embedded default corpus: English technical prose every Python installation carries, no download needed.

    Documents, in this order:

    1. the pydoc help topics (`pydoc_data.topics.topics`: the language reference behind `help("if")`), sorted by
       topic name, one document per topic;
    2. the docstrings of the standard library modules in `DEFAULT_CORPUS_MODULES` (sorted), read from their source
       files (not imported): each module's own docstring, then those of its classes, functions and methods in source
       order, one document each.

    Each document is cleaned (trailing spaces removed, runs of blank lines collapsed into one, ends stripped);
    documents shorter than `MINIMUM_DOCUMENT_LENGTH` (40) characters and repeats are dropped. The result is the same
    list, in the same order, on every run of the same Python installation, whatever the process imported or patched
    before, and under `python -OO` too; another Python version gives a somewhat different corpus, as its
    documentation differs.

    Size on CPython 3.11.7: 4,565 documents, 1,641,939 characters (1.6 MB; 0.47 MB of pydoc topics, the rest
    docstrings; 111 distinct characters). That is nearly all the documentation prose the standard library holds: a
    few MB are not to be had from it. Building it parses about 6.6 MB of source: 1 to 2 s the first time, after which
    it is cached for the process.

    Returns:
        `list[str]`: a new list on every call (the cached corpus is never handed out to be mutated).
    """
    return list(_build_default_corpus())


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def _as_file_list(files: str | os.PathLike | Sequence[str | os.PathLike], argument: str) -> list[str]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    files = [os.fspath(file) for file in files]
    if not files:
        raise ValueError(f"`{argument}` is an empty list; give at least one file.")
    missing = [file for file in files if not os.path.isfile(file)]
    if missing:
        raise ValueError(f"`{argument}`: these files do not exist (or are not files): {missing}")
    return files


def _file_format(files_by_argument: dict[str, list[str]]) -> tuple[str, dict]:
    """The `datasets` builder for the files, which must all have the same format (one builder reads them all)."""
    formats = {}  # (builder, delimiter) -> first file with it
    for argument, files in files_by_argument.items():
        for file in files:
            extension = Path(file).suffix.lower()
            if extension not in FILE_FORMATS:
                raise ValueError(
                    f"`{argument}`: cannot read {file!r}: unknown extension {extension!r}; supported: "
                    f"{', '.join(FILE_FORMATS)} (.txt gives one row per line; .tsv is tab-separated CSV)."
                )
            builder, builder_arguments = FILE_FORMATS[extension]
            formats.setdefault((builder, builder_arguments.get("delimiter")), (argument, file))
    if len(formats) > 1:
        examples = ", ".join(f"{file!r} ({argument})" for argument, file in formats.values())
        raise ValueError(
            f"`train_files` and `validation_files` must all have one format (.txt, .csv, .tsv or .json/.jsonl); "
            f"got several: {examples}."
        )
    builder, delimiter = next(iter(formats))
    return builder, ({"delimiter": delimiter} if delimiter else {})


def _check_text_column(dataset: datasets.Dataset, text_column: str, source: str) -> None:
    if text_column not in dataset.column_names:
        raise ValueError(
            f"`text_column` {text_column!r} is not a column of {source}; available columns: {dataset.column_names}."
            + (" (.txt files always give the single column 'text'.)" if dataset.column_names == ["text"] else "")
        )
    feature = dataset.features[text_column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(
            f"`text_column` {text_column!r} of {source} holds {feature}, not strings; choose a text column among "
            f"{dataset.column_names}."
        )


def _drop_blank_texts(dataset: datasets.Dataset, text_column: str) -> datasets.Dataset:
    """Drop rows whose text is missing or blank: a blank line of a .txt file separates paragraphs, it is no document."""
    return dataset.filter(
        lambda texts: [bool(text) and not text.isspace() for text in texts],
        input_columns=text_column,
        batched=True,
        desc="Dropping blank texts",
    )


def _split_off_validation(
    dataset: datasets.Dataset, validation_fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out a random `validation_fraction` of the rows; both parts keep the original row order.

    The rows are chosen by a permutation from `numpy.random.default_rng(seed)`, so the same data, fraction and seed
    always give the same split.
    """
    row_count = len(dataset)
    validation_count = max(1, round(row_count * validation_fraction))
    if row_count < 2 or validation_count >= row_count:
        raise ValueError(
            f"Cannot split {row_count} rows into train and validation with `validation_fraction`="
            f"{validation_fraction}: give more data, or pass `validation_files` / a dataset with a validation split."
        )
    permutation = numpy.random.default_rng(seed).permutation(row_count)
    validation_rows = numpy.sort(permutation[:validation_count])
    train_rows = numpy.sort(permutation[validation_count:])
    return dataset.select(train_rows), dataset.select(validation_rows)


def load_text_dataset(
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    train_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    validation_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    text_column: str = "text",
    validation_fraction: float = 0.05,
    seed: int = 0,
    train_split: str = "train",
    validation_split: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Load a text dataset as a `DatasetDict` with a "train" and a "validation" split.

    The source is, in this order of precedence (give at most one of the first two):

    - `dataset_name` (+ `dataset_config`): a dataset on the Hugging Face Hub, or a local dataset folder, read with
      `datasets.load_dataset`. Needs the network the first time; afterwards its cache works offline with
      `HF_HUB_OFFLINE=1`.
    - `train_files` (+ `validation_files`): local files, all of one format, chosen by extension: `.txt` (one row per
      line, column "text"), `.csv`, `.tsv` (tab-separated), `.json` / `.jsonl` (JSON lines, or one JSON document).
    - neither: the embedded default corpus (`default_corpus_texts()`), one row per document, in column `text_column`.

    When the source has no validation split, a random `validation_fraction` of the train rows is held out (chosen
    with `seed`, so the split is reproducible; both splits keep the original row order). Rows whose text is missing
    or blank are dropped. Other columns are kept, so that a classification dataset keeps its labels.

    Args:
        dataset_name (`str`, *optional*): Hub dataset id (e.g. "wikitext") or local dataset folder.
        dataset_config (`str`, *optional*): configuration of `dataset_name` (e.g. "wikitext-2-raw-v1").
        train_files (`str`, `os.PathLike` or a list of them, *optional*): local training files.
        validation_files (`str`, `os.PathLike` or a list of them, *optional*): local validation files; needs
            `train_files`.
        text_column (`str`, defaults to "text"): the column holding the text; must exist in the data and hold strings.
        validation_fraction (`float`, defaults to 0.05): share of the train rows held out when the source has no
            validation split; in (0, 1).
        seed (`int`, defaults to 0): seed of that hold-out.
        train_split (`str`, defaults to "train"): `dataset_name` only: the split to train on.
        validation_split (`str`, *optional*): `dataset_name` only: the split to validate on. Default: "validation"
            if the dataset has it, else a hold-out of `train_split`.
        cache_dir (`str` or `os.PathLike`, *optional*): where `datasets` keeps its Arrow cache (default: its own,
            `HF_DATASETS_CACHE`).

    Returns:
        `datasets.DatasetDict` with exactly the splits "train" and "validation".

    Raises:
        ValueError: for `dataset_name` together with `train_files`/`validation_files`, `validation_files` without
            `train_files`, missing files (all listed), an unknown extension, files of mixed formats, a `text_column`
            absent from the data (the available columns listed) or not holding strings, an unknown split, or a
            `validation_fraction` outside (0, 1).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must lie strictly between 0 and 1, got {validation_fraction}.")
    if dataset_name is not None and (train_files is not None or validation_files is not None):
        raise ValueError(
            "Give either `dataset_name` (a Hub dataset) or `train_files`/`validation_files` (local files), not both."
        )
    if dataset_config is not None and dataset_name is None:
        raise ValueError(f"`dataset_config` {dataset_config!r} needs `dataset_name`.")
    if validation_files is not None and train_files is None:
        raise ValueError("`validation_files` needs `train_files` as well.")
    if dataset_name is None and (train_split != "train" or validation_split is not None):
        raise ValueError("`train_split` and `validation_split` choose among the splits of `dataset_name`; give it.")
    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None

    if dataset_name is not None:
        source = f"dataset {dataset_name!r}" + (f" ({dataset_config!r})" if dataset_config else "")
        loaded = datasets.load_dataset(dataset_name, dataset_config, cache_dir=cache_dir)
        if validation_split is None and "validation" in loaded:
            validation_split = "validation"
        for argument, split in (("train_split", train_split), ("validation_split", validation_split)):
            if split is not None and split not in loaded:
                raise ValueError(f"`{argument}` {split!r} is not a split of {source}; it has: {list(loaded)}.")
        train = loaded[train_split]
        validation = loaded[validation_split] if validation_split is not None else None
    elif train_files is not None:
        files_by_argument = {"train_files": _as_file_list(train_files, "train_files")}
        if validation_files is not None:
            files_by_argument["validation_files"] = _as_file_list(validation_files, "validation_files")
        builder, builder_arguments = _file_format(files_by_argument)
        data_files = {"train": files_by_argument["train_files"]}
        if "validation_files" in files_by_argument:
            data_files["validation"] = files_by_argument["validation_files"]
        source = f"the {builder} files {[file for files in data_files.values() for file in files]}"
        loaded = datasets.load_dataset(builder, data_files=data_files, cache_dir=cache_dir, **builder_arguments)
        train, validation = loaded["train"], loaded.get("validation")
    else:
        source = "the default corpus"
        train, validation = datasets.Dataset.from_dict({text_column: default_corpus_texts()}), None

    _check_text_column(train, text_column, f"{source} (train)")
    train = _drop_blank_texts(train, text_column)
    if validation is None:
        train, validation = _split_off_validation(train, validation_fraction, seed)
    else:
        _check_text_column(validation, text_column, f"{source} (validation)")
        validation = _drop_blank_texts(validation, text_column)
    logger.info(f"Loaded {source}: {len(train)} train and {len(validation)} validation rows.")
    return datasets.DatasetDict({"train": train, "validation": validation})


__all__ = ["DEFAULT_CORPUS_MODULES", "FILE_FORMATS", "default_corpus_texts", "load_text_dataset"]
