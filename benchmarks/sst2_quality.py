"""Quality on SST-2 (binary sentiment, sentence level): test accuracy of an LSTM, a BiLSTM and an LSTM initialised
from an hf_rnn language model, each trained with `hf-rnn train-classifier` on the same word-level tokenizer.

```bash
python benchmarks/sst2_quality.py                      # about 5 minutes per contender on 2 CPU cores
python benchmarks/sst2_quality.py --quick              # 640 training sentences, 1 epoch: a smoke run
python benchmarks/sst2_quality.py --contenders lstm,bilstm --epochs 6
```

Data: `<data-dir>/sst2/stsa.binary.{train,dev,test}` (`<label> <tokenized sentence>` a line: 6,920 / 872 / 1,821
sentences), converted to JSON-lines files with `text` and `label` fields in the work folder (never in the repo):
JSON rather than CSV/TSV because the csv reader turns a text such as "null" or "NA" into a missing value.
Tokenizer: `train_tokenizer(kind="word")` on the training sentences, keeping the words seen at least twice (7,140);
rarer ones become `<unk>`, so the models learn an `<unk>` embedding that unseen dev and test words use too.

Contenders (`--contenders`, default all), one recurrent layer, embedding and hidden size 256, embedding dropout 0.3,
output dropout 0.5, AdamW lr 1e-3 (the recipe's default), batch 32, one evaluation per epoch and the epoch with the
best dev accuracy kept (`--load_best_model_at_end`), its test accuracy reported:

- `lstm`: unidirectional LSTM from scratch, the last real token's state classified (`classifier_pooling last`).
- `bilstm`: the same, bidirectional (hidden 256 per direction).
- `lstm_lm_init`: `hf-rnn train-lm` first (stateful TBPTT on the SST-2 training sentences, the same tokenizer and
  LSTM size; `--max_train_minutes` = the budget, the best validation epoch kept), then `hf-rnn train-classifier
  --model_name_or_path <that LM>` (the ULMFiT path: the embedding and the LSTM come from the LM, the head is new).
  Why the SST-2 sentences and not PTB: the classifier must use the language model's vocabulary, and PTB's 10k words
  (news, numbers as N) miss much of the movie-review vocabulary, which would all become `<unk>`; pretraining on the
  training sentences keeps the vocabulary of the other two contenders, so only the initialisation differs (ULMFiT's
  in-domain language-model stage). The dev and test sentences are never used for the language model's training
  (the dev sentences, without labels, are its validation text).

Budget: `--budget-minutes` (default 5) per contender. `hf-rnn train-classifier` has no wall-clock option, so the
classifiers train for `--epochs` (default 10) and the time they took is reported beside the accuracy (if the recipe
gains `max_train_minutes`, it is used with the budget). Writes `<results-dir>/sst2_quality.json`: test accuracy and
macro-F1, dev accuracy, epochs, minutes and parameters per contender, and the headline: the best hf_rnn test accuracy,
with published references for orientation (LSTM 84-86 %, BiLSTM about 87 % with pretrained word vectors, Tai et al.
2015; lower from scratch).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import fields
from pathlib import Path

from common import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    base_parser,
    count_parameters,
    format_table,
    machine_facts,
    recipe_env,
    require_files,
    setup,
    write_json,
)

SPLITS = {"train": "stsa.binary.train", "validation": "stsa.binary.dev", "test": "stsa.binary.test"}
CONTENDERS = ("lstm", "bilstm", "lstm_lm_init")
MIN_WORD_COUNT = 2  # words seen once in training become <unk>
EMBEDDING_SIZE, HIDDEN_SIZE, EMBEDDING_DROPOUT, OUTPUT_DROPOUT = 256, 256, 0.3, 0.5
BATCH_SIZE = 32
QUICK = {"budget_minutes": 0.2, "epochs": 1, "max_train_samples": 640, "max_eval_samples": 200}
REFERENCE = (
    "SST-2 sentence level, published: LSTM 84-86 %, BiLSTM about 87 % test accuracy with pretrained word vectors "
    "(Tai et al. 2015); models trained from scratch usually land lower."
)


# ---------------------------------------------------------------------------------------------------------------------
# Data (tested on tiny files in tests/test_quality_benchmarks.py)
# ---------------------------------------------------------------------------------------------------------------------


def read_sst2(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(label, sentence) for every line `<label> <tokenized sentence>` of an stsa.binary file; the label must be 0 or
    1 and the sentence non-empty (a ValueError names the file and line)."""
    rows = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            label, _, text = line.strip().partition(" ")
            if label not in ("0", "1") or not text.strip():
                raise ValueError(
                    f"{path}, line {number}: expected '<0 or 1> <sentence>', got {line.strip()[:80]!r}; is --data-dir "
                    "the folder holding sst2/stsa.binary.{train,dev,test}?"
                )
            rows.append((int(label), text.strip()))
    return rows


def sst2_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """`{split: path}` of `<data_dir>/sst2/stsa.binary.{train,dev,test}`; missing files are a ValueError naming them."""
    folder = Path(data_dir) / "sst2"
    sources = {split: folder / name for split, name in SPLITS.items()}
    return require_files(data_dir, sources, "sst2/stsa.binary.train, .dev and .test")


def convert_sst2(data_dir: str | os.PathLike, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `<output_dir>/{train,validation,test}.jsonl` ({"text": ..., "label": 0 or 1} a line) from
    `<data_dir>/sst2/stsa.binary.*`; returns their paths. Missing files are a ValueError naming them."""
    sources = sst2_files(data_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    converted = {}
    for split, source in sources.items():
        converted[split] = output_dir / f"{split}.jsonl"
        lines = (json.dumps({"text": text, "label": label}) + "\n" for label, text in read_sst2(source))
        converted[split].write_text("".join(lines), encoding="utf-8")
    return converted


def texts_of(jsonl: Path) -> list[str]:
    with open(jsonl, encoding="utf-8") as file:
        return [json.loads(line)["text"] for line in file]


def word_vocab_size(texts: list[str], min_count: int = MIN_WORD_COUNT) -> int:
    """The special tokens plus the words seen at least `min_count` times: the `vocab_size` of the word tokenizer."""
    counts = Counter(word for text in texts for word in text.split())
    return 4 + sum(count >= min_count for word, count in counts.items() if word != "<unk>")


# ---------------------------------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------------------------------


def as_options(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        if value is True:
            flags.append(f"--{name}")  # plain flags (`--bidirectional`, `--overwrite`)
        elif value is not None and value is not False:
            flags += [f"--{name}", str(value)]
    return flags


def recipe_has_option(dataclass_type, name: str) -> bool:
    return name in {field.name for field in fields(dataclass_type)}


def run_recipe(command: list[str], log_path: Path, env: dict) -> float:
    """Run a recipe, its output in `log_path`; returns its wall-clock seconds. A failure raises RuntimeError with the
    end of the log."""
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.run(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, check=False
        )
    status = process.returncode
    if status != 0:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"`{' '.join(command[1:4])}` exited with status {status}; end of {log_path}:\n{tail}")
    return time.perf_counter() - start


def best_epoch_options(output_dir: Path, args) -> dict:
    """Options both recipes share: evaluate and save every epoch, keep and finally load the best one, quiet, CPU."""
    return {
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "save_total_limit": 1,
        "load_best_model_at_end": "true",
        "report_to": "none",
        "disable_tqdm": "true",
        "seed": args.seed,
        "output_dir": output_dir,
        "use_cpu": "true" if args.device == "cpu" else None,
        "overwrite": True,
    }


def pretrain_language_model(files: dict[str, Path], tokenizer_dir: Path, args, env: dict) -> tuple[Path, dict]:
    """`hf-rnn train-lm` on the training sentences (one a line), validated on the dev sentences, for the budget."""
    text_dir = Path(args.work_dir) / "lm_text"
    text_dir.mkdir(exist_ok=True)
    for split in ("train", "validation"):
        (text_dir / f"{split}.txt").write_text("\n".join(texts_of(files[split])) + "\n", encoding="utf-8")
    output_dir = Path(args.work_dir) / "sst2_lm"
    options = {
        "train_files": text_dir / "train.txt",
        "validation_files": text_dir / "validation.txt",
        "tokenizer_name_or_path": tokenizer_dir,
        "cell_type": "lstm",
        "num_hidden_layers": 1,
        "embedding_size": EMBEDDING_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "embedding_dropout": EMBEDDING_DROPOUT,
        "output_dropout": OUTPUT_DROPOUT,
        "batching": "stateful",
        "block_size": 35,
        "per_device_train_batch_size": 20,
        "per_device_eval_batch_size": 10,
        "num_train_epochs": 1000,  # the budget ends training
        "max_train_minutes": args.budget_minutes,
        "max_grad_norm": 0.25,
        # 133k words overfit within minutes: load_best_model_at_end keeps the best validation epoch
        **best_epoch_options(output_dir, args),
    }
    if args.quick:
        options["max_eval_samples"] = QUICK["max_eval_samples"]
    command = [sys.executable, "-m", "hf_rnn.cli", "train-lm", *as_options(options)]
    seconds = run_recipe(command, output_dir.with_name("sst2_lm.log"), env)
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    summary = {
        "valid_perplexity": results["eval_perplexity"],
        "epochs": results.get("epoch"),
        "steps": results.get("train_steps"),
        "train_minutes": results["train_runtime"] / 60,
        "command_minutes": seconds / 60,
        "command": "hf-rnn train-lm " + " ".join(as_options(options)),
    }
    return output_dir, summary


def classifier_options(contender: str, files: dict[str, Path], tokenizer_dir: Path, output_dir: Path, args) -> dict:
    from hf_rnn.classification import ClassifierTrainingArguments

    options = {
        "train_file": files["train"],
        "validation_file": files["validation"],
        "test_file": files["test"],
        "text_column": "text",
        "label_column": "label",
        "embedding_dropout": EMBEDDING_DROPOUT,
        "output_dropout": OUTPUT_DROPOUT,
        "classifier_pooling": "last",
        "per_device_train_batch_size": BATCH_SIZE,
        "per_device_eval_batch_size": 128,
        "num_train_epochs": args.epochs,
        "metric_for_best_model": "accuracy",
        **best_epoch_options(output_dir, args),
    }
    if contender == "lstm_lm_init":
        options["model_name_or_path"] = Path(args.work_dir) / "sst2_lm"  # its tokenizer and architecture
    else:
        options.update(
            tokenizer_name_or_path=tokenizer_dir,
            cell_type="lstm",
            num_hidden_layers=1,
            embedding_size=EMBEDDING_SIZE,
            hidden_size=HIDDEN_SIZE,
            bidirectional=contender == "bilstm",
        )
    if recipe_has_option(ClassifierTrainingArguments, "max_train_minutes"):
        options.update(max_train_minutes=args.budget_minutes, num_train_epochs=max(args.epochs, 100))
    if args.quick:
        options.update(max_train_samples=QUICK["max_train_samples"], max_eval_samples=QUICK["max_eval_samples"])
    return options


def run_classifier(contender: str, files: dict[str, Path], tokenizer_dir: Path, args, env: dict) -> dict:
    output_dir = Path(args.work_dir) / contender
    options = classifier_options(contender, files, tokenizer_dir, output_dir, args)
    command = [sys.executable, "-m", "hf_rnn.cli", "train-classifier", *as_options(options)]
    seconds = run_recipe(command, output_dir.with_name(f"{contender}.log"), env)
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    return {
        "test_accuracy": results["test_accuracy"],
        "test_macro_f1": results.get("test_macro_f1"),
        "dev_accuracy": results.get("eval_accuracy"),
        "epochs": results.get("epoch"),
        "train_minutes": results["train_runtime"] / 60,
        "command_minutes": seconds / 60,
        "parameters": count_parameters(output_dir),
        "vocab_size": config["vocab_size"],
        "bidirectional": config["bidirectional"],
        "test_samples": results.get("test_samples"),
        "settings": {"command": "hf-rnn train-classifier " + " ".join(as_options(options))},
    }


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def headline(contenders: dict[str, dict]) -> dict:
    accuracies = {name: result["test_accuracy"] for name, result in contenders.items() if "test_accuracy" in result}
    summary = {"metric": "sst2_test_accuracy", "ratio": None, "target": None, "met": None, "reference": REFERENCE}
    if accuracies:
        best = max(accuracies, key=accuracies.get)
        summary.update(accuracy=accuracies[best], best_hf_rnn=best)
    return summary


def parse_arguments(argv: list[str] | None = None):
    parser = base_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds sst2/ (default ../shared/data)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="per contender (5; --quick 0.2)")
    parser.add_argument("--epochs", type=int, default=None, help="classifier epochs (10; --quick 1)")
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma-separated from {', '.join(CONTENDERS)}"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="converted data, models and logs (default: tmp)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    unknown = sorted(set(args.contenders) - set(CONTENDERS))
    if unknown or not args.contenders:
        parser.error(f"--contenders: unknown {unknown}; choose from {', '.join(CONTENDERS)}")
    if args.budget_minutes is None:
        args.budget_minutes = QUICK["budget_minutes"] if args.quick else 5.0
    if args.epochs is None:
        args.epochs = QUICK["epochs"] if args.quick else 10
    if not args.budget_minutes > 0 or args.epochs < 1:
        parser.error(
            f"--budget-minutes must be positive and --epochs at least 1, got {args.budget_minutes}, {args.epochs}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        sst2_files(args.data_dir)  # before the slow imports: a wrong --data-dir fails at once
    except ValueError as error:
        print(f"sst2_quality: error: {error}", file=sys.stderr)
        return 2
    device = setup(args)
    from hf_rnn.tokenization import train_tokenizer

    env = recipe_env(args.threads)
    with tempfile.TemporaryDirectory(prefix="sst2_quality_") as temporary:
        args.work_dir = Path(args.work_dir or temporary).absolute()
        files = convert_sst2(args.data_dir, args.work_dir / "data")
        train_texts = texts_of(files["train"])
        vocab_size = word_vocab_size(train_texts)
        tokenizer = train_tokenizer(train_texts, kind="word", vocab_size=vocab_size)
        tokenizer_dir = args.work_dir / "sst2-word-tokenizer"
        tokenizer.save_pretrained(tokenizer_dir)
        sizes = {split: len(texts_of(path)) for split, path in files.items()}
        print(f"SST-2 sentences {sizes}; word tokenizer of {len(tokenizer)} tokens", flush=True)

        contenders, language_model = {}, None
        for name in args.contenders:
            print(f"--- {name}", flush=True)
            load_before = os.getloadavg()[0]
            try:
                if name == "lstm_lm_init":
                    _, language_model = pretrain_language_model(files, tokenizer_dir, args, env)
                    print(f"language model: validation perplexity {language_model['valid_perplexity']:.1f}")
                contenders[name] = run_classifier(name, files, tokenizer_dir, args, env)
            except (RuntimeError, OSError, ValueError, KeyError) as error:
                contenders[name] = {"failed": str(error)[-3000:]}
                print(f"{name} failed: {error}", file=sys.stderr, flush=True)
                continue
            if name == "lstm_lm_init":
                contenders[name]["language_model"] = language_model
            result = contenders[name]
            # other people's processes on a shared machine slow a contender down: recorded beside its numbers
            result["load_average_1m_before_after"] = [load_before, os.getloadavg()[0]]
            print(
                f"{name}: test accuracy {result['test_accuracy']:.4f} ({result['train_minutes']:.1f} min)", flush=True
            )

    summary = headline(contenders)
    flags = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    data = {
        "name": "sst2_quality",
        "machine": machine_facts(device),
        "flags": flags,
        "headline": summary,
        "sentences": sizes,
        "tokenizer": {"kind": "word", "size": len(tokenizer), "min_word_count": MIN_WORD_COUNT},
        "contenders": contenders,
    }
    write_json(args.results_dir / "sst2_quality.json", data)
    columns = ["test_accuracy", "test_macro_f1", "dev_accuracy", "epochs", "train_minutes", "parameters"]
    rows = [
        {"contender": name, **{column: result.get(column, "") for column in columns}}
        for name, result in contenders.items()
    ]
    print(format_table(rows, ["contender", *columns]))
    print(f"headline: {json.dumps(summary)}")
    print(f"wrote {args.results_dir / 'sst2_quality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
