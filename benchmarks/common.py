"""Shared helpers of the benchmark scripts: command-line flags, machine facts, the alternating timing loop, atomic
JSON results, tables and plots.

Not a script: `run_all.py` skips it. Every benchmark does

```python
parser = base_parser(__doc__)            # --threads --device --quick --repeats --results-dir
args = parser.parse_args()
device = setup(args)                     # torch.set_num_threads, checks --device
timing = time_alternating(hf_rnn_run, baseline_run, repeats, device=device)   # A B A B ...
write_results(args.results_dir, "name", {"headline": headline(...), ...})   # + machine facts
```

Ratios are always hf_rnn / baseline in throughput (baseline seconds / hf_rnn seconds for the same work): above 1 means
hf_rnn is faster. They are the median of per-repetition ratios, each pair timed back to back, so that slow phases of
a shared machine hit both sides alike; absolute times alone are not evidence there.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
DEFAULT_RESULTS_DIR = BENCHMARKS_DIR / "results"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"  # ../shared/data from the repo root: never copied in


# ---------------------------------------------------------------------------------------------------------------------
# Flags and machine
# ---------------------------------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """'1,32' -> [1, 32] (sizes given on the command line)."""
    values = [positive_int(part) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def base_parser(doc: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes; a script adds its own sizes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (when available)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats: about a minute")
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed repetitions per side")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where <name>.json goes")
    return parser


def setup(args: argparse.Namespace):
    """Apply --threads and check --device; returns the torch.device."""
    import torch

    torch.set_num_threads(args.threads)
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise SystemExit(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine (torch {torch.__version__})")
    load, cpus = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0), os.cpu_count() or 1
    if args.device == "cpu" and args.threads > 1 and load + args.threads > cpus + 0.5:
        # each parallel operator waits for all its threads: with the cores taken by others, a thread waits for a
        # time slice at every operator, and small operators (decode steps, RNN time steps) slow down many times over
        print(
            f"warning: load average {load:.1f} on {cpus} CPUs before this run: other processes compete for the cores, "
            f"so --threads {args.threads} timings may be dominated by waiting; the paired ratios are still comparable, "
            "absolute numbers are not (--threads 1 suffers less)",
            file=sys.stderr,
        )
    return torch.device(args.device)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*arguments: str) -> str | None:
    try:
        result = subprocess.run(["git", *arguments], cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def machine_facts(device) -> dict:
    """What the numbers depend on: CPU, threads, versions, device, date, and the hf_rnn source revision (the model
    code changes under benchmarks: `git_dirty` says the working tree differed from the commit)."""
    import torch
    import transformers

    facts = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "hf_rnn")),
    }
    return facts


# ---------------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------------


def median_ratio(candidate_seconds: list[float], baseline_seconds: list[float]) -> float:
    """Median over repetitions of baseline / candidate time: the throughput ratio candidate / baseline."""
    if len(candidate_seconds) != len(baseline_seconds) or not candidate_seconds:
        raise ValueError(
            f"need one baseline time per candidate time, got {len(candidate_seconds)} and {len(baseline_seconds)}"
        )
    return statistics.median(b / c for c, b in zip(candidate_seconds, baseline_seconds))


@dataclass
class Timing:
    candidate_seconds: list[float]  # hf_rnn, one per repetition
    baseline_seconds: list[float]

    @property
    def ratio(self) -> float:
        return median_ratio(self.candidate_seconds, self.baseline_seconds)

    def summary(self, work: float, unit: str = "tokens") -> dict:
        """Medians as `<unit>_per_second` for `work` units per run, the per-repetition times and the ratio."""
        return {
            f"hf_rnn_{unit}_per_second": work / statistics.median(self.candidate_seconds),
            f"baseline_{unit}_per_second": work / statistics.median(self.baseline_seconds),
            "ratio": self.ratio,
            # diagnostic: the fastest repetition of each side, the closest to an idle machine
            "ratio_of_best": min(self.baseline_seconds) / min(self.candidate_seconds),
            "hf_rnn_seconds": self.candidate_seconds,
            "baseline_seconds": self.baseline_seconds,
        }


def time_rotating(
    functions: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device=None,
    counterbalance: bool = False,
) -> dict[str, list[float]]:
    """Run the functions in turn, A B C A B C ... (`warmup` untimed rounds first); seconds per call, by name.

    `counterbalance`: every other round runs in reverse order (A B C C B A A B C ...), so that with three or more
    sides none always runs right after the same other one (a side that leaves the caches cold slows the next).
    """
    synchronize = _synchronizer(device)
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for round_index in range(repeats):
        order = list(functions.items())
        for name, function in reversed(order) if counterbalance and round_index % 2 else order:
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def time_alternating(
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    device=None,
) -> Timing:
    """Candidate (hf_rnn), baseline, candidate, baseline, ... each call timed; see `time_rotating`."""
    times = time_rotating({"candidate": candidate, "baseline": baseline}, repeats, warmup, device)
    return Timing(times["candidate"], times["baseline"])


def _synchronizer(device) -> Callable[[], None]:
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------


def headline(metric: str, ratio: float, target: float) -> dict:
    """The number run_all.py and the README tabulate: a ratio (higher is better) against its target."""
    return {"metric": metric, "ratio": ratio, "target": target, "met": bool(ratio >= target)}


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a temporary file in the same folder, then os.replace (a crash leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, allow_nan=False)  # fails before touching any file
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_results(results_dir: Path, name: str, results: dict, device, args: argparse.Namespace) -> Path:
    """`<results_dir>/<name>.json`: the results, the machine facts and the flags of the run."""
    flags = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    data = {"name": name, "machine": machine_facts(device), "flags": flags, **results}
    path = Path(results_dir) / f"{name}.json"
    write_json(path, data)
    return path


def write_results_and_plot(
    args: argparse.Namespace,
    name: str,
    results: dict,
    device,
    rows: list[dict],
    labels: list[str],
    target: float,
    title: str,
) -> int:
    """The end of a speed benchmark: `<name>.png` (each row's `ratio`, labelled) and `<name>.json` in
    `args.results_dir`; prints the JSON's path and returns the exit status 0."""
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plot_ratios(args.results_dir / f"{name}.png", labels, [row["ratio"] for row in rows], target, title)
    path = write_results(args.results_dir, name, results, device, args)
    print(f"results: {path}")
    return 0


def require_files(data_dir, files: dict[str, Path], expected: str) -> dict[str, Path]:
    """`files` when every one exists; else a ValueError naming the missing ones and what `--data-dir` should hold."""
    missing = [str(path) for path in files.values() if not Path(path).is_file()]
    if missing:
        raise ValueError(
            f"--data-dir {str(data_dir)!r}: missing {', '.join(missing)}; point --data-dir at the folder holding "
            f"{expected}."
        )
    return files


def recipe_env(threads: int) -> dict:
    """Environment of an `hf-rnn` recipe subprocess: `threads` intra-op threads, unbuffered, offline."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def count_parameters(model_dir: Path) -> int:
    """Parameters stored in a saved model's safetensors files (read from the headers, no tensor loaded)."""
    from safetensors import safe_open

    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as weights:
            names = weights.keys()  # a safe_open handle is not iterable itself
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in names)
    return total


def is_finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table; floats with 3 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    cells = [[cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(r[i]) for r in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(value.ljust(width) for value, width in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ratios(path: Path, labels: list[str], ratios: list[float], target: float, title: str) -> Path:
    """Horizontal bars of hf_rnn/baseline ratios with the target and parity lines."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.5))
    colors = ["tab:green" if ratio >= target else "tab:red" for ratio in ratios]
    axes.barh(labels, ratios, color=colors)
    axes.axvline(1.0, color="black", linewidth=1)
    axes.axvline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target}")
    for y, ratio in enumerate(ratios):
        axes.text(ratio, y, f" {ratio:.2f}", va="center")
    axes.invert_yaxis()
    axes.set_xlim(0, max(1.2, *(ratio * 1.15 for ratio in ratios)))  # room for the labels
    axes.set_xlabel("throughput ratio hf_rnn / baseline (median of alternating repetitions)")
    axes.set_title(title)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
