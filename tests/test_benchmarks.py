"""The benchmark scripts (benchmarks/) run end to end at their smallest sizes and write complete results.

Benchmarks are not tests: no time or ratio is checked against a threshold here. What is checked: each script runs
in its own process, writes `<name>.json` with the machine facts, the flags and a headline of finite positive
ratios, draws its plot, and its correctness checks pass (identical generated tokens, matching outputs, cache sizes);
run_all.py passes the flags on, survives a failing script and reports it; the timing loop alternates; JSON
writes are atomic.
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# the smallest settings of each script: a few seconds each, most of it importing torch and transformers
TINY = {
    "train_throughput": ["--cells", "lstm,gru", "--hidden-size", "8", "--vocab-size", "40", "--batch-size", "3",
                         "--bptt", "4", "--block-steps", "1", "--data-dir", "/nonexistent"],
    "inference_throughput": ["--cells", "lstm,gru", "--hidden-size", "8", "--vocab-size", "40", "--batch-size", "3",
                             "--seq-len", "6"],
    "generation_speed": ["--hidden-size", "8", "--vocab-size", "40", "--batch-sizes", "1,3", "--new-tokens", "5"],
    "context_length": ["--hidden-size", "16", "--vocab-size", "40", "--contexts", "4,16", "--decode-steps", "2"],
}
MACHINE_KEYS = {"date", "cpu_model", "cpu_count", "torch_threads", "torch", "transformers", "device", "git_commit"}


def load_common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(name: str, results_dir: Path) -> dict:
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--repeats", "1", "--threads", "1",
               "--results-dir", str(results_dir), *TINY[name]]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "ratio" in result.stdout  # the printed table
    data = json.loads((results_dir / f"{name}.json").read_text())
    assert data["name"] == name
    assert MACHINE_KEYS <= set(data["machine"]), set(data["machine"])
    assert data["machine"]["torch_threads"] == 1 and data["machine"]["device"] == "cpu"
    assert data["flags"]["quick"] is True and data["flags"]["repeats"] == 1
    items = data["headline"] if isinstance(data["headline"], list) else [data["headline"]]
    assert items
    for item in items:
        assert isinstance(item["metric"], str) and item["metric"]
        assert math.isfinite(item["ratio"]) and item["ratio"] > 0, item
        assert item["target"] > 0 and item["met"] == (item["ratio"] >= item["target"]), item
    assert (results_dir / f"{name}.png").stat().st_size > 1000
    assert not list(results_dir.glob(".*.tmp")), "a temporary JSON file was left behind"
    return data


def assert_positive(*values):
    for value in values:
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, value


def test_train_throughput(tmp_path):
    data = run_benchmark("train_throughput", tmp_path)
    assert [cell["cell_type"] for cell in data["cells"]] == ["lstm", "gru"]
    assert data["sizes"]["data"] == "random"  # no PTB under --data-dir: random tokens
    for cell in data["cells"]:
        assert_positive(cell["trainer_tokens_per_second"], cell["baseline_tokens_per_second"],
                        cell["model_loop_tokens_per_second"], cell["ratio"], cell["model_loop_ratio"])
        # every side trained (a finite loss near ln(40) = 3.7 on random tokens) for one timed block of one step
        for key in ("trainer_mean_loss", "baseline_mean_loss", "model_loop_mean_loss"):
            assert 2.0 < cell[key] < 6.0, (key, cell[key])
        assert {name: len(seconds) for name, seconds in cell["block_seconds"].items()} == {
            "hf_rnn Trainer": 1, "baseline": 1, "hf_rnn model loop": 1
        }
    assert len(data["headline"]) == 2


def test_inference_throughput(tmp_path):
    data = run_benchmark("inference_throughput", tmp_path)
    assert data["outputs_match"] is True
    cases = [(row["cell_type"], row["case"]) for row in data["cases"]]
    assert len(cases) == 8 and ("gru", "backbone, padded") in cases
    for row in data["cases"]:
        assert row["max_abs_difference"] < 1e-4, row
        assert_positive(row["hf_rnn_tokens_per_second"], row["baseline_tokens_per_second"], row["ratio"])
        if row["case"].endswith("full"):
            assert row["real_tokens_per_batch"] == 3 * 6
        else:  # lengths in [T/2, T]
            assert 3 * 3 <= row["real_tokens_per_batch"] <= 3 * 6


def test_generation_speed(tmp_path):
    data = run_benchmark("generation_speed", tmp_path)
    assert data["tokens_identical"] is True
    assert [row["batch_size"] for row in data["batches"]] == [1, 3]
    for row in data["batches"]:
        assert row["tokens_identical"] is True
        assert row["hf_rnn_new_tokens"] == row["baseline_new_tokens"] == [row["batch_size"], 5]
        assert_positive(row["hf_rnn_floor_fraction"], row["baseline_floor_fraction"], row["floor_ms_per_step"])
    # weights read per decode step: 2 LSTM layers (4 gates x 8 x (8 + 8) + 2 x 4 x 8 biases) + head (40 x 8 + 40)
    assert data["floor"]["decode_step_weight_bytes"] == 4 * (2 * (4 * 8 * 16 + 2 * 4 * 8) + 40 * 8 + 40)
    assert data["floor"]["best_bytes_per_second"] >= data["floor"]["median_bytes_per_second"] > 0


def test_context_length(tmp_path):
    data = run_benchmark("context_length", tmp_path)
    rows = data["contexts"]
    assert [row["context_length"] for row in rows] == [4, 16]
    for row in rows:
        # the recurrent state: 2 layers x (h, c) x 16 floats, whatever the context
        assert row["hf_rnn_cache_bytes"] == 2 * 2 * 16 * 4
        # GPT-2's cache: 2 layers x (keys, values) x context x 16 floats
        assert row["gpt2_cache_bytes"] == 2 * 2 * row["context_length"] * 16 * 4
        assert_positive(row["hf_rnn_ms_per_token"], row["gpt2_ms_per_token"], row["ratio"], row["flatness"])
    assert data["models"]["hf_rnn"]["parameters"] > 0 and data["models"]["gpt2"]["parameters"] > 0


FAKE_GOOD = """
import json, sys
from pathlib import Path


def main():
    args = sys.argv[1:]
    results = Path(args[args.index("--results-dir") + 1])
    results.mkdir(parents=True, exist_ok=True)
    headline = [{"metric": "speed", "ratio": 1.5, "target": 1.0, "met": True}]
    (results / "good.json").write_text(json.dumps({"headline": headline, "argv": args}))


if __name__ == "__main__":
    main()
"""


def test_run_all_passes_flags_continues_after_failure_and_reports(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "good.py").write_text(FAKE_GOOD)
    (scripts / "bad.py").write_text("import sys\nif __name__ == '__main__':\n    sys.exit(3)\n")
    (scripts / "common.py").write_text("raise SystemExit('common.py must not be run')\n")
    (scripts / "helpers.py").write_text("raise SystemExit('a module without a __main__ block is not a script')\n")
    results = tmp_path / "results"
    command = [sys.executable, str(BENCHMARKS / "run_all.py"), "--benchmarks-dir", str(scripts), "--results-dir",
               str(results), "--quick", "--threads", "1"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "=== common" not in result.stdout and "=== helpers" not in result.stdout
    summary = result.stdout.split("Summary")[1]
    assert "bad" in summary and "FAILED (exit 3)" in summary and "(no results written by this run)" in summary
    good_row = next(line for line in summary.splitlines() if line.startswith("good"))
    assert "speed" in good_row and "1.5" in good_row and "yes" in good_row
    assert "1 benchmark(s) failed: bad" in result.stdout
    argv = json.loads((results / "good.json").read_text())["argv"]
    assert argv == ["--threads", "1", "--device", "cpu", "--results-dir", str(results), "--quick"]


def test_time_alternating_alternates_and_takes_the_median_ratio():
    common = load_common()
    calls = []
    timing = common.time_alternating(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert len(timing.candidate_seconds) == len(timing.baseline_seconds) == 3
    calls.clear()
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = common.time_rotating(functions, repeats=3, warmup=0, counterbalance=True)
    assert "".join(calls) == "abccbaabc" and {name: len(t) for name, t in times.items()} == dict.fromkeys("abc", 3)
    # per-repetition ratios baseline / candidate: 2, 1, 0.5 -> median 1
    assert common.median_ratio([1.0, 2.0, 4.0], [2.0, 2.0, 2.0]) == 1.0
    assert common.median_ratio([1.0, 1.0, 1.0], [3.0, 3.0, 30.0]) == 3.0  # one disturbed repetition does not count
    with pytest.raises(ValueError, match="one baseline time per candidate time"):
        common.median_ratio([1.0], [1.0, 2.0])
    assert common.headline("x", 0.94, 0.95)["met"] is False


def test_write_json_is_atomic(tmp_path):
    common = load_common()
    path = tmp_path / "out" / "result.json"
    common.write_json(path, {"ratio": 1.25})
    assert json.loads(path.read_text()) == {"ratio": 1.25}
    with pytest.raises(ValueError):
        common.write_json(path, {"ratio": float("nan")})  # refused: not JSON
    with pytest.raises(TypeError):
        common.write_json(path, {"ratio": object()})
    assert json.loads(path.read_text()) == {"ratio": 1.25}  # the old file is intact
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary file left
