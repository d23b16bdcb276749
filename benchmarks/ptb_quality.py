"""Quality at a fixed budget on Penn Treebank (word level): validation and test perplexity after the same wall-clock
training budget for pytorch/examples word_language_model's recipe in plain PyTorch and for `hf-rnn train-lm`.

```bash
python benchmarks/ptb_quality.py                       # 15 minutes of training per contender (about an hour)
python benchmarks/ptb_quality.py --quick               # 15 s each on 5,000 lines, 300 to evaluate: a smoke run
python benchmarks/ptb_quality.py --budget-minutes 2 --contenders baseline,hf_rnn_stateful
python benchmarks/ptb_quality.py --budget-minutes 2 --contenders hf_rnn_blocks --merge   # add to the last results
```

Contenders (`--contenders`, default all): the same 2-layer LSTM, 200 wide, embedding 200, untied, dropout 0.2
(word_language_model's defaults), except the AWD one:

- `baseline`: word_language_model's `main.py` copied into `baselines.py` (TBPTT 35 over 20 streams, SGD lr 20 by a
  manual update, clip 0.25, lr / 4 when validation stalls, best model kept, its test perplexity reported).
- `hf_rnn_stateful`: `hf-rnn train-lm --batching stateful --block_size 35`, the same recipe through Trainer:
  `--optim sgd --learning_rate 20 --max_grad_norm 0.25 --lr_scheduler_type reduce_lr_on_plateau` with
  `{"factor": 0.25, "patience": 0, "threshold": 0}` (lr / 4 as soon as one evaluation is no better than the best),
  one evaluation per epoch; the last model is evaluated. `--hf-optimizer adamw`: the recipe's default instead (AdamW
  lr 1e-3, linear decay over the epochs that the budget never reaches: nearly constant).
- `hf_rnn_stateful_wlm_init`: the same with `--weight_init awd`: word_language_model's initial weights (uniform
  +-0.1 embeddings and head, PyTorch's default for the LSTM) instead of hf_rnn's Glorot/orthogonal/forget-bias-1,
  so that only the library differs; SGD at learning rate 20 is tuned for that initialisation.
- `hf_rnn_blocks`: the same with `--batching blocks --block_size 128` (transformers' run_clm: shuffled blocks, each
  from a zero state; its evaluation also starts every block from zero, which costs perplexity by itself).
- `hf_rnn_awd_small`: `hf-rnn train-lm training/awd_lstm_ptb_small.json` with the data, tokenizer, budget and output
  folder overridden (skipped, with a message, while that file does not exist).

Every hf_rnn contender uses one word-level tokenizer trained on PTB train (`train_tokenizer(kind="word")`: the 9,998
words plus the 4 special tokens; PTB's own `<unk>` is the tokenizer's unk), and the recipe appends its EOS to every
line, so its token counts equal word_language_model's (words + one `<eos>` per line: 929,589 / 73,760 / 82,430). The
script checks this before training: every perplexity here is per word.

Both sides run with the allocator setting of `hf_rnn.command_utils.tune_glibc_malloc` (glibc keeps freed memory for
reuse instead of faulting it in again every step; `hf-rnn train-lm` sets it for itself, this script for the baseline),
unless `HF_RNN_MALLOC_TUNING=0`, which leaves both alone.

Each contender gets `--budget-minutes` of training wall-clock (its in-training evaluations included), then its final
evaluation. Writes `<results-dir>/ptb_quality.json` (machine facts; per contender validation and test perplexity,
steps, epochs, tokens/s, parameters, settings; headline = best hf_rnn test perplexity / baseline test perplexity,
target <= 1.0) and `ptb_quality.png` (validation perplexity against training minutes).
"""

import ast
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    base_parser,
    count_parameters,
    format_table,
    machine_facts,
    pyplot,
    recipe_env,
    require_files,
    setup,
    write_json,
)

SPLITS = ("train", "valid", "test")
# word_language_model's token counts of Mikolov's PTB: words plus one <eos> per line
PTB_TOKEN_COUNTS = {"train": 929_589, "valid": 73_760, "test": 82_430}
PTB_WORD_VOCAB_SIZE = 4 + 9_998  # the special tokens plus every distinct word of PTB train but "<unk>"
CONTENDERS = ("baseline", "hf_rnn_stateful", "hf_rnn_stateful_wlm_init", "hf_rnn_blocks", "hf_rnn_awd_small")
AWD_SMALL_ARGUMENTS = REPO_ROOT / "training" / "awd_lstm_ptb_small.json"
# word_language_model's defaults, for every contender but AWD
EMBEDDING_SIZE, HIDDEN_SIZE, NUM_LAYERS, DROPOUT = 200, 200, 2, 0.2
BATCH_SIZE, EVAL_BATCH_SIZE, BPTT = 20, 10, 35
BLOCKS_BLOCK_SIZE = 128  # the blocks recipe's default: a 35-token block from a zero state would see little context
QUICK_BUDGET_MINUTES = 0.25
QUICK_LINES = {"train": 5_000, "valid": 300, "test": 300}  # --quick: the first lines of each split only


# ---------------------------------------------------------------------------------------------------------------------
# Data and token counts (tested on tiny files in tests/test_quality_benchmarks.py)
# ---------------------------------------------------------------------------------------------------------------------


def ptb_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """`{split: path}` of `<data_dir>/ptb/{train,valid,test}.txt`; missing files are a ValueError naming them."""
    folder = Path(data_dir) / "ptb"
    files = {split: folder / f"{split}.txt" for split in SPLITS}
    return require_files(data_dir, files, "ptb/train.txt, ptb/valid.txt and ptb/test.txt (Mikolov's word-level PTB)")


def train_word_tokenizer(train_file: str | os.PathLike, output_dir: str | os.PathLike, vocab_size: int):
    """A word-level tokenizer (`hf_rnn.tokenization`, kind "word") trained on every line of `train_file`, saved to
    `output_dir`. In-process rather than `hf-rnn train-tokenizer`, which holds a share of the lines out for
    validation: a word seen only in those lines would become <unk>."""
    from hf_rnn.tokenization import train_tokenizer

    with open(train_file, encoding="utf-8") as file:
        tokenizer = train_tokenizer(file, kind="word", vocab_size=vocab_size)
    tokenizer.save_pretrained(output_dir)
    return tokenizer


def first_lines(path: Path, output: Path, count: int) -> Path:
    """The first `count` lines of `path` written to `output` (--quick evaluates every contender on them)."""
    with open(path, encoding="utf-8") as source:
        lines = [line for _, line in zip(range(count), source)]
    output.write_text("".join(lines), encoding="utf-8")
    return output


def baseline_token_counts(files: dict[str, Path]) -> dict[str, int]:
    """Tokens per split as word_language_model counts them (words + one <eos> per line)."""
    from baselines import count_tokens

    return {split: count_tokens(path) for split, path in files.items()}


def recipe_token_counts(files: dict[str, Path], tokenizer) -> dict[str, int]:
    """Tokens per split as `hf-rnn train-lm` makes them: its text loader (one row per non-blank line; a test file is
    read as its own validation file, as the recipe reads `--test_files`), then `tokenize_documents` (each row's
    tokens and the EOS token)."""
    from hf_rnn.data import load_text_dataset
    from hf_rnn.language_modeling import concatenated_token_ids, tokenize_documents

    counts = {}
    for split, path in files.items():
        rows = load_text_dataset(train_files=[str(path)], validation_files=[str(path)])["validation"]
        counts[split] = len(
            concatenated_token_ids(tokenize_documents(rows, tokenizer, description=f"Tokenizing {split}"))
        )
    return counts


def check_token_counts(baseline: dict[str, int], recipe: dict[str, int]) -> None:
    """Perplexities compare only when both sides predict the same tokens: differing counts are a ValueError."""
    different = [split for split in baseline if baseline[split] != recipe.get(split)]
    if different:
        details = ", ".join(f"{split}: baseline {baseline[split]:,}, hf_rnn {recipe.get(split)}" for split in different)
        raise ValueError(
            f"Token counts differ ({details}): the word tokenizer or the recipe's document separation does not give "
            "one token per word plus one EOS per line, so the perplexities would not be per word."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------------------------------


def run_baseline(files: dict[str, Path], args, device, vocabulary_file: Path) -> dict:
    import torch
    from baselines import Corpus, WordLanguageModel, train_word_language_model

    torch.manual_seed(args.seed)
    corpus = Corpus(files["train"], files["valid"], files["test"], vocabulary_file=vocabulary_file)
    model = WordLanguageModel(len(corpus.dictionary), EMBEDDING_SIZE, HIDDEN_SIZE, NUM_LAYERS, DROPOUT)
    result = train_word_language_model(
        model,
        corpus,
        budget_seconds=args.budget_minutes * 60,
        bptt=BPTT,
        batch_size=BATCH_SIZE,
        eval_batch_size=EVAL_BATCH_SIZE,
        device=device,
    )
    curve = [
        {"minutes": entry["minutes"], "valid_perplexity": math.exp(entry["valid_loss"])} for entry in result.history
    ]
    return {
        "valid_perplexity": result.valid_perplexity,
        "test_perplexity": result.test_perplexity,
        "steps": result.steps,
        "epochs": result.epochs,
        "train_minutes": result.train_seconds / 60,  # with the evaluation at the budget's last step
        # training alone: up to the last validation's start (earlier validations included, as for hf_rnn)
        "train_tokens_per_second": result.train_tokens / (result.history[-1]["minutes"] * 60),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "vocab_size": len(corpus.dictionary),
        "valid_tokens_scored": result.valid_tokens,
        "test_tokens_scored": result.test_tokens,
        "curve": curve,
        "settings": {
            "recipe": "pytorch/examples word_language_model main.py (benchmarks/baselines.py)",
            "model": f"LSTM {NUM_LAYERS} x {HIDDEN_SIZE}, embedding {EMBEDDING_SIZE}, untied, dropout {DROPOUT}",
            "bptt": BPTT,
            "batch_size": BATCH_SIZE,
            "eval_batch_size": EVAL_BATCH_SIZE,
            "optimizer": "SGD by a manual update, lr 20, lr / 4 when validation does not improve, clip 0.25",
            "evaluated_model": "the best validation loss (evaluated after every epoch and at the budget)",
        },
    }


def hf_rnn_arguments(contender: str, files: dict[str, Path], tokenizer_dir: Path, output_dir: Path, args) -> list[str]:
    """`hf-rnn train-lm` options of the stateful and blocks contenders."""
    stateful = contender.startswith("hf_rnn_stateful")
    batching, block_size = ("stateful", BPTT) if stateful else ("blocks", BLOCKS_BLOCK_SIZE)
    options = {
        "train_files": files["train"],
        "validation_files": files["valid"],
        "test_files": files["test"],
        "tokenizer_name_or_path": tokenizer_dir,
        "cell_type": "lstm",
        "num_hidden_layers": NUM_LAYERS,
        "hidden_size": HIDDEN_SIZE,
        "embedding_size": EMBEDDING_SIZE,
        "tie_word_embeddings": "false",
        "embedding_dropout": DROPOUT,
        "hidden_dropout": DROPOUT,
        "output_dropout": DROPOUT,
        "batching": batching,
        "block_size": block_size,
        "per_device_train_batch_size": BATCH_SIZE,
        "per_device_eval_batch_size": EVAL_BATCH_SIZE,
        "num_train_epochs": 1000,  # the budget ends training
        "max_train_minutes": args.budget_minutes,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "logging_steps": 200,
        "disable_tqdm": "true",  # Trainer then prints every log as a dict line, which gives the timeline
        "report_to": "none",
        "max_grad_norm": 0.25,
        "seed": args.seed,
        "output_dir": output_dir,
    }
    if contender.endswith("_wlm_init"):
        # word_language_model's (and awd-lstm-lm's) initial weights instead of hf_rnn's Glorot/orthogonal ones
        options["weight_init"] = "awd"
    if args.hf_optimizer == "sgd":  # word_language_model's recipe
        options.update(
            optim="sgd",
            learning_rate=20,
            lr_scheduler_type="reduce_lr_on_plateau",
            lr_scheduler_kwargs=json.dumps({"factor": 0.25, "patience": 0, "threshold": 0.0}),
        )
    if args.device == "cpu":
        options["use_cpu"] = "true"
    return [item for name, value in options.items() for item in (f"--{name}", str(value))] + ["--overwrite"]


def awd_arguments_file(files: dict[str, Path], tokenizer_dir: Path, output_dir: Path, args) -> Path:
    """`training/awd_lstm_ptb_small.json` with this run's data, tokenizer, budget and output folder, written next to
    the output folder (a recipe reads either options or one JSON file, not both)."""
    arguments = json.loads(AWD_SMALL_ARGUMENTS.read_text(encoding="utf-8"))
    arguments.update(
        train_files=[str(files["train"])],
        validation_files=[str(files["valid"])],
        test_files=[str(files["test"])],
        tokenizer_name_or_path=str(tokenizer_dir),  # per-word perplexity, whatever the file says
        max_train_minutes=args.budget_minutes,
        output_dir=str(output_dir),
        overwrite=True,
        disable_tqdm=True,
        report_to="none",
    )
    for name in ("model_name_or_path", "dataset_name", "dataset_config", "push_to_hub", "resume_from_checkpoint"):
        arguments.pop(name, None)
    if args.device == "cpu":
        arguments["use_cpu"] = True
    path = output_dir.with_name(f"{output_dir.name}.arguments.json")
    path.write_text(json.dumps(arguments, indent=2), encoding="utf-8")
    return path


def parse_log_line(line: str) -> dict | None:
    """A Trainer log line printed under `--disable_tqdm true` (a dict whose floats are strings of 4 significant
    digits) as a dict of numbers; None for any other line."""
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        logs = ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(logs, dict):
        return None
    parsed = {}
    for key, value in logs.items():
        try:
            parsed[key] = float(value)
        except (TypeError, ValueError):
            parsed[key] = value
    return parsed


def run_recipe(command: list[str], log_path: Path, env: dict) -> tuple[list[tuple[float, dict]], float | None]:
    """Run a recipe with its output (stdout and stderr) copied to `log_path`. Returns every Trainer log dict with the
    minutes since training began (the recipe's "... language model: N parameters" line, logged just before Trainer
    starts), and the minute the time budget stopped training (its "`max_train_minutes`=... reached" line; None when
    the epochs ran out first). A failed command raises RuntimeError with the end of its log."""
    logs, begin, stop = [], time.perf_counter(), None
    with open(log_path, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT
        )
        for line in process.stdout:
            now = time.perf_counter()
            log_file.write(line)
            if "language model:" in line and "parameters" in line:
                begin = now
            if "`max_train_minutes`=" in line and "reached" in line:
                stop = (now - begin) / 60
            parsed = parse_log_line(line)
            if parsed is not None:
                logs.append(((now - begin) / 60, parsed))
        status = process.wait()
    if status != 0:
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"`{' '.join(command[1:4])}` exited with status {status}; end of {log_path}:\n{tail}")
    return logs, stop


def run_hf_rnn(contender: str, files: dict[str, Path], tokenizer_dir: Path, args) -> dict:
    output_dir = Path(args.work_dir) / contender
    env = recipe_env(args.threads)
    recipe = [sys.executable, "-m", "hf_rnn.cli", "train-lm"]
    if contender == "hf_rnn_awd_small":
        arguments_file = awd_arguments_file(files, tokenizer_dir, output_dir, args)
        command = recipe + [str(arguments_file)]
        settings = json.loads(arguments_file.read_text(encoding="utf-8"))
    else:
        arguments = hf_rnn_arguments(contender, files, tokenizer_dir, output_dir, args)
        command = recipe + arguments
        settings = {"command": "hf-rnn train-lm " + " ".join(arguments)}
        stateful = contender.startswith("hf_rnn_stateful")
        settings.update(batching="stateful" if stateful else "blocks", block_size=BPTT if stateful else BLOCKS_BLOCK_SIZE)
        settings.update(per_device_train_batch_size=BATCH_SIZE, per_device_eval_batch_size=EVAL_BATCH_SIZE)
    logs, stop_minutes = run_recipe(command, output_dir.with_name(f"{output_dir.name}.log"), env)
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    if "test_perplexity" not in results:
        raise RuntimeError(f"{output_dir / 'all_results.json'} has no test_perplexity: train-lm lacks --test_files.")

    # evaluations during training come before Trainer's closing "train_runtime" log; the final one ends the budget.
    # Each is placed at the training minute it started (its log line comes when it ends), as the baseline's are.
    train_minutes = results["train_runtime"] / 60
    curve, training_done = [], False
    for minutes, entry in logs:
        training_done = training_done or "train_runtime" in entry
        if "eval_loss" in entry and not training_done:
            started = minutes - entry.get("eval_runtime", 0.0) / 60
            curve.append({"minutes": started, "valid_perplexity": math.exp(entry["eval_loss"])})
    if not curve or not math.isclose(curve[-1]["valid_perplexity"], results["eval_perplexity"], rel_tol=1e-3):
        # the budget's last step evaluated inside training already (its epoch's evaluation) unless NT-ASGD averaged
        curve.append({"minutes": train_minutes, "valid_perplexity": results["eval_perplexity"]})
    batching, block_size = settings.get("batching", "blocks"), settings.get("block_size", 128)
    targets_per_row = block_size if batching == "stateful" else block_size - 1  # a block's first token has no target
    tokens_per_step = settings.get("per_device_train_batch_size", 8) * block_size  # a mean with --variable_bptt
    # training alone: up to the step that ended the budget (evaluations inside it included), not the evaluation after
    training_minutes = stop_minutes if stop_minutes is not None else train_minutes
    return {
        "valid_perplexity": results["eval_perplexity"],
        "test_perplexity": results["test_perplexity"],
        "steps": results.get("train_steps"),
        "epochs": results.get("epoch"),
        "train_minutes": train_minutes,  # Trainer's train_runtime: with the evaluation at the budget's last step
        "train_tokens_per_second": results.get("train_steps", 0) * tokens_per_step / (training_minutes * 60),
        "parameters": count_parameters(output_dir),
        "vocab_size": json.loads((output_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"],
        "valid_tokens_scored": results.get("eval_samples", 0) * targets_per_row,
        "test_tokens_scored": results.get("test_samples", 0) * targets_per_row,
        "curve": curve,
        "settings": settings,
        "evaluated_model": "the last one (NT-ASGD: the average)" if settings.get("nt_asgd") else "the last one",
    }


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------


def plot_curves(path: Path, contenders: dict[str, dict], budget_minutes: float) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for name, result in contenders.items():
        if "curve" in result:
            minutes = [point["minutes"] for point in result["curve"]]
            axes.plot(minutes, [point["valid_perplexity"] for point in result["curve"]], marker="o", label=name)
    axes.axvline(budget_minutes, color="gray", linestyle="--", linewidth=1, label=f"budget {budget_minutes:g} min")
    axes.set_yscale("log")
    axes.set_xlabel("training wall-clock (minutes)")
    axes.set_ylabel("validation perplexity (per word)")
    axes.set_title("PTB word level: validation perplexity at equal wall-clock")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def headline(contenders: dict[str, dict]) -> dict:
    """Best hf_rnn test perplexity / baseline test perplexity: at most 1.0 meets the target."""
    summary = {"metric": "ptb_test_ppl_ratio", "ratio": None, "target": "<= 1.0", "met": None}
    baseline = contenders.get("baseline", {}).get("test_perplexity")
    hf_rnn = {
        name: r["test_perplexity"] for name, r in contenders.items() if name != "baseline" and "test_perplexity" in r
    }
    if baseline is None or not hf_rnn:
        return summary
    best = min(hf_rnn, key=hf_rnn.get)
    summary.update(ratio=hf_rnn[best] / baseline, met=bool(hf_rnn[best] <= baseline), best_hf_rnn=best)
    summary.update(best_hf_rnn_test_perplexity=hf_rnn[best], baseline_test_perplexity=baseline)
    return summary


def parse_arguments(argv: list[str] | None = None):
    parser = base_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds ptb/ (default ../shared/data)")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help=f"training per contender (15; --quick {QUICK_BUDGET_MINUTES})",
    )
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma-separated from {', '.join(CONTENDERS)}"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="hf_rnn output folders and logs (default: tmp)")
    parser.add_argument(
        "--merge", action="store_true", help="add these contenders to the results file of an earlier run (same budget)"
    )
    parser.add_argument("--hf-optimizer", choices=("sgd", "adamw"), default="sgd", help="hf_rnn 2x200 contenders")
    parser.add_argument("--seed", type=int, default=1111, help="word_language_model's default seed")
    args = parser.parse_args(argv)
    args.contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    unknown = sorted(set(args.contenders) - set(CONTENDERS))  # noqa: E501
    if unknown or not args.contenders:
        parser.error(f"--contenders: unknown {unknown}; choose from {', '.join(CONTENDERS)}")
    if args.budget_minutes is None:
        args.budget_minutes = QUICK_BUDGET_MINUTES if args.quick else 15.0
    if not args.budget_minutes > 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        files = ptb_files(args.data_dir)  # before the slow imports: a wrong --data-dir fails at once
    except ValueError as error:
        print(f"ptb_quality: error: {error}", file=sys.stderr)
        return 2
    device = setup(args)
    from hf_rnn.command_utils import tune_glibc_malloc

    # `hf-rnn train-lm` keeps freed memory in its process (glibc thresholds); the in-process baseline gets the same
    # allocator, so that the comparison is between the training code, not between heap layouts
    allocator_tuned = tune_glibc_malloc()
    with tempfile.TemporaryDirectory(prefix="ptb_quality_") as temporary:
        args.work_dir = Path(args.work_dir or temporary).absolute()
        args.work_dir.mkdir(parents=True, exist_ok=True)

        # one word tokenizer for every hf_rnn contender; its token counts checked against word_language_model's
        tokenizer_dir = args.work_dir / "ptb-word-tokenizer"
        tokenizer = train_word_tokenizer(files["train"], tokenizer_dir, PTB_WORD_VOCAB_SIZE)
        baseline_counts = baseline_token_counts(files)
        recipe_counts = recipe_token_counts(files, tokenizer)
        check_token_counts(baseline_counts, recipe_counts)
        tokens = {
            "per_split": recipe_counts,
            "equal_in_baseline_and_hf_rnn": True,
            "equal_to_published_ptb_counts": baseline_counts == PTB_TOKEN_COUNTS,
            "hf_rnn_tokenizer_size": len(tokenizer),
            "hf_rnn_document_separation": "one row per non-blank line, the tokenizer's EOS (</s>) appended to each",
        }
        print(f"tokens per split, words + one EOS per line, the same for both: {recipe_counts}", flush=True)
        full_train = files["train"]  # the vocabulary of every contender, --quick or not
        if args.quick:  # every contender on the same first lines (the tokenizer keeps the whole vocabulary)
            for split, count in QUICK_LINES.items():
                files[split] = first_lines(files[split], args.work_dir / f"{split}.quick.txt", count)

        contenders = {}
        for name in args.contenders:
            print(f"--- {name}: {args.budget_minutes:g} minutes of training", flush=True)
            if name == "hf_rnn_awd_small" and not AWD_SMALL_ARGUMENTS.is_file():
                contenders[name] = {"skipped": f"{AWD_SMALL_ARGUMENTS.relative_to(REPO_ROOT)} does not exist yet"}
                print(f"{name} skipped: {contenders[name]['skipped']}", flush=True)
                continue
            load_before = os.getloadavg()[0]
            try:
                if name == "baseline":
                    contenders[name] = run_baseline(files, args, device, vocabulary_file=full_train)
                else:
                    contenders[name] = run_hf_rnn(name, files, tokenizer_dir, args)
            except (RuntimeError, OSError, ValueError) as error:
                contenders[name] = {"failed": str(error)[-3000:]}
                print(f"{name} failed: {error}", file=sys.stderr, flush=True)
                continue
            result = contenders[name]
            # other people's processes on a shared machine slow a contender down: recorded beside its numbers
            result["load_average_1m_before_after"] = [load_before, os.getloadavg()[0]]
            print(f"{name}: valid ppl {result['valid_perplexity']:.2f}, test ppl {result['test_perplexity']:.2f}")

    if args.merge:  # add these contenders to an earlier run's results (same budget), keeping its other contenders
        earlier = json.loads((args.results_dir / "ptb_quality.json").read_text(encoding="utf-8"))
        if earlier["budget_minutes"] != args.budget_minutes:
            raise SystemExit(f"--merge: the earlier run had a {earlier['budget_minutes']}-minute budget, not {args.budget_minutes}")
        contenders = {**{k: v for k, v in earlier["contenders"].items() if k not in contenders}, **contenders}
    summary = headline(contenders)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    figure = None
    if any("curve" in result for result in contenders.values()):
        figure = plot_curves(args.results_dir / "ptb_quality.png", contenders, args.budget_minutes)
    flags = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    data = {
        "name": "ptb_quality",
        "machine": machine_facts(device),
        "flags": flags,
        "headline": summary,
        "budget_minutes": args.budget_minutes,
        "tokens": tokens,
        "glibc_malloc_tuned": allocator_tuned,
        "contenders": contenders,
        "figure": figure.name if figure else None,
    }
    write_json(args.results_dir / "ptb_quality.json", data)
    columns = ["valid_perplexity", "test_perplexity", "epochs", "steps", "train_tokens_per_second", "parameters"]
    rows = [
        {"contender": name, **{column: result.get(column, "") for column in columns}, "note": result.get("skipped", "")}
        for name, result in contenders.items()
    ]
    print(format_table(rows, ["contender", *columns, "note"]))
    print(f"headline: {json.dumps(summary)}")
    print(f"wrote {args.results_dir / 'ptb_quality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
