"""Run every benchmark script, each in its own process, and tabulate their headlines.

Usage:
    python benchmarks/run_all.py                   # every benchmarks/*.py script (with a __main__ block), sorted
    python benchmarks/run_all.py --quick           # their --quick modes (about a minute each)
    python benchmarks/run_all.py --only generation_speed context_length --threads 1
    make bench                                     # the same through the Makefile; `make bench QUICK=1` for --quick

Each script gets the same `--quick/--threads/--device/--results-dir` flags and writes `<results-dir>/<name>.json`.
A failing script does not stop the others; the summary lists every headline (metric, ratio hf_rnn/baseline, target,
met?) from the JSON files this run wrote, and the exit status is 1 when any script failed (unmet targets are
reported, not failures: benchmarks are measurements).
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from common import BENCHMARKS_DIR, DEFAULT_RESULTS_DIR, format_table, positive_int

NOT_BENCHMARKS = {"common.py", "run_all.py"}
MAIN_BLOCK = re.compile(r"""^if __name__ == ["']__main__["']:""", re.MULTILINE)


def discover(directory: Path) -> list[Path]:
    """The scripts: `*.py` with a `__main__` block, sorted; modules (common.py, baselines.py, ...) have none."""
    return sorted(
        path
        for path in Path(directory).glob("*.py")
        if path.name not in NOT_BENCHMARKS and MAIN_BLOCK.search(path.read_text(encoding="utf-8"))
    )


def headlines(data: dict) -> list[dict]:
    """The `headline` entry of a results JSON as a list (a script may give one dict or a list of them)."""
    value = data.get("headline")
    if isinstance(value, dict):
        return [value]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def summary_rows(name: str, returncode: int, results_path: Path, started: float) -> list[dict]:
    status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
    if not results_path.is_file() or results_path.stat().st_mtime < started:
        return [{"benchmark": name, "status": status, "metric": "(no results written by this run)"}]
    try:
        items = headlines(json.loads(results_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        return [{"benchmark": name, "status": status, "metric": f"(unreadable {results_path.name}: {error})"}]
    if not items:
        return [{"benchmark": name, "status": status, "metric": "(no headline in the results)"}]
    return [
        {
            "benchmark": name,
            "status": status,
            "metric": item.get("metric", ""),
            "ratio": item.get("ratio", ""),
            "target": item.get("target", ""),
            "met": {True: "yes", False: "NO"}.get(item.get("met"), ""),
        }
        for item in items
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these scripts (names without .py)")
    parser.add_argument("--benchmarks-dir", type=Path, default=BENCHMARKS_DIR, help="where the scripts are")
    args = parser.parse_args(argv)

    scripts = discover(args.benchmarks_dir)
    if args.only:
        unknown = sorted(set(args.only) - {script.stem for script in scripts})
        if unknown:
            parser.error(
                f"--only: no script named {unknown} in {args.benchmarks_dir}; have {[s.stem for s in scripts]}"
            )
        scripts = [script for script in scripts if script.stem in args.only]
    if not scripts:
        parser.error(f"no benchmark scripts in {args.benchmarks_dir}")
    flags = ["--threads", str(args.threads), "--device", args.device, "--results-dir", str(args.results_dir)]
    flags += ["--quick"] if args.quick else []

    rows, failed = [], []
    for script in scripts:
        print(f"\n=== {script.stem} ({' '.join(flags)}) ===", flush=True)
        started = time.time()
        returncode = subprocess.run([sys.executable, str(script), *flags], check=False).returncode
        print(f"=== {script.stem}: exit {returncode} after {time.time() - started:.0f} s ===", flush=True)
        if returncode != 0:
            failed.append(script.stem)
        rows += summary_rows(script.stem, returncode, Path(args.results_dir) / f"{script.stem}.json", started)

    print("\nSummary (ratio = hf_rnn / baseline, higher is better):")
    print(format_table(rows, ["benchmark", "status", "metric", "ratio", "target", "met"]))
    if failed:
        print(f"\n{len(failed)} benchmark(s) failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
