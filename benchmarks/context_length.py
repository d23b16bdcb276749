"""Decode latency and memory against context length: hf_rnn's constant-size recurrent state against a transformer's
growing key/value cache (`transformers.GPT2LMHeadModel`, random weights, about the same number of parameters).

Usage:
    python benchmarks/context_length.py                    # contexts 128, 256, ..., 8192; 2 x 512 LSTM, vocab 10k
    python benchmarks/context_length.py --quick            # contexts 128 ... 1024, fewer decode steps
    python benchmarks/context_length.py --contexts 512,4096 --decode-steps 32

For each context length L, each model prefills a random context of L tokens (one forward with `use_cache=True`),
then decodes `--decode-steps` tokens one at a time in a manual loop (greedy, the model called on one token with its
cache: `cache=` for both). Each repetition starts from a copy of the prefilled cache; the order is hf_rnn at L,
hf_rnn at the shortest context (the reference for flatness), GPT-2 at L, then the reverse, and so on (counterbalanced,
so that neither hf_rnn run always follows GPT-2's). Reported per length:

- ms/token of the decode steps (median over repetitions), and the ratio GPT-2 time / hf_rnn time;
- cache bytes after the prefill (sum of the tensors in RNNCache / GPT-2's DynamicCache): the primary memory number;
- RSS growth over the prefill (psutil: the resident memory held afterwards, not the peak, which `ru_maxrss`
  cannot give per length within one process), and the prefill time (one measurement, for orientation).

Headline: hf_rnn's flatness, ms/token at the shortest context / at the longest (paired repetitions, target 0.8:
the recurrent curve stays flat), and decode tokens/s hf_rnn / GPT-2 at the longest context (target 1.0).
One PNG: ms/token and cache MB against context length (log x).
"""

import copy
import statistics
import sys
import time

import torch
from common import (
    base_parser,
    format_table,
    headline,
    int_list,
    median_ratio,
    positive_int,
    pyplot,
    setup,
    time_rotating,
    write_results,
)
from transformers import GPT2Config, GPT2LMHeadModel

from hf_rnn import RNNConfig, RNNForCausalLM

NAME = "context_length"
FLATNESS_TARGET, SPEED_TARGET = 0.8, 1.0
FULL_CONTEXTS = [128 * 2**i for i in range(7)]  # 128 ... 8192
QUICK_CONTEXTS = FULL_CONTEXTS[:4]  # 128 ... 1024


def cache_bytes(cache) -> int:
    """Bytes of every tensor held by a transformers Cache's layers (keys/values, or recurrent states)."""
    seen, total = set(), 0

    def add(value):
        nonlocal total
        if isinstance(value, torch.Tensor):
            if value.data_ptr() not in seen:
                seen.add(value.data_ptr())
                total += value.numel() * value.element_size()
        elif isinstance(value, dict):
            for item in value.values():
                add(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)

    for layer in cache.layers:
        add(vars(layer))
    return total


def resident_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def prefill(model, input_ids):
    """One forward over the context; returns the cache and the first greedy token [B, 1]."""
    output = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
    return output.cache, output.logits[:, -1:].argmax(dim=-1)


def decode(model, cache, token, steps: int):
    """`steps` greedy decode steps, one token each, from a copy of `cache` (the original stays at the context)."""
    cache = copy.deepcopy(cache)
    for _ in range(steps):
        output = model(input_ids=token, cache=cache, use_cache=True)
        cache, token = output.cache, output.logits[:, -1:].argmax(dim=-1)
    return token


def build_models(args, max_positions: int, device):
    torch.manual_seed(0)
    rnn = RNNForCausalLM(
        RNNConfig(
            vocab_size=args.vocab_size,
            embedding_size=args.hidden_size,
            hidden_size=args.hidden_size,
            num_hidden_layers=args.layers,
            cell_type="lstm",
        )
    )
    # same width and depth; n_head 8 (64-wide heads at 512); positions for the longest context and its decode steps
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=args.vocab_size,
            n_embd=args.hidden_size,
            n_layer=args.layers,
            n_head=max(1, args.hidden_size // 64),
            n_positions=max_positions,
            bos_token_id=None,
            eos_token_id=None,
        )
    )
    return rnn.to(device).eval(), gpt2.to(device).eval()


def measure(models: dict, contexts: list[int], args, device, repeats: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    steps = args.decode_steps
    for model in models.values():  # first calls allocate and pick kernels: keep that out of the first row
        decode(model, *prefill(model, torch.zeros(1, 8, dtype=torch.long, device=device)), 2)
    rows = []
    reference = None  # hf_rnn's prefilled state at the shortest context
    for length in contexts:
        context = torch.randint(0, args.vocab_size, (1, length), generator=generator).to(device)
        row = {"context_length": length}
        states = {}
        for name, model in models.items():
            before = resident_bytes()
            start = time.perf_counter()
            states[name] = prefill(model, context)
            row[f"{name}_prefill_ms"] = 1000 * (time.perf_counter() - start)
            after = resident_bytes()
            row[f"{name}_cache_bytes"] = cache_bytes(states[name][0])
            row[f"{name}_rss_increase_mb"] = (after - before) / 2**20 if before is not None else None
        reference = reference or states["hf_rnn"]
        functions = {
            "hf_rnn": lambda state=states["hf_rnn"]: decode(models["hf_rnn"], *state, steps),
            "hf_rnn_reference": lambda reference=reference: decode(models["hf_rnn"], *reference, steps),
            "gpt2": lambda state=states["gpt2"]: decode(models["gpt2"], *state, steps),
        }
        times = time_rotating(functions, repeats, warmup=1, device=device, counterbalance=True)
        for name in models:
            row[f"{name}_ms_per_token"] = 1000 * statistics.median(times[name]) / steps
        row["ratio"] = median_ratio(times["hf_rnn"], times["gpt2"])  # GPT-2 time / hf_rnn time
        row["flatness"] = median_ratio(times["hf_rnn"], times["hf_rnn_reference"])  # at shortest / at this length
        row["seconds"] = times
        rows.append(row)
        del states
    return rows


def plot(path, rows: list[dict]) -> None:
    plt = pyplot()
    lengths = [r["context_length"] for r in rows]
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, label, color in (("hf_rnn", "hf_rnn LSTM", "tab:blue"), ("gpt2", "GPT-2", "tab:orange")):
        latency.plot(lengths, [r[f"{name}_ms_per_token"] for r in rows], marker="o", label=label, color=color)
        memory.plot(lengths, [r[f"{name}_cache_bytes"] / 2**20 for r in rows], marker="o", label=label, color=color)
    for axes, ylabel in ((latency, "decode ms / token"), (memory, "cache MB (log)")):
        axes.set_xscale("log", base=2)
        axes.set_xlabel("context length (tokens, log)")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
    latency.set_ylim(bottom=0)
    memory.set_yscale("log")
    latency.set_title("Per-token decode latency")
    memory.set_title("Cache size after the prefill")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--hidden-size", type=positive_int, default=512, help="width of both models")
    parser.add_argument("--layers", type=positive_int, default=2, help="depth of both models")
    parser.add_argument("--vocab-size", type=positive_int, default=10000)
    parser.add_argument("--contexts", type=int_list, default=None, help="comma-separated (default 128,...,8192)")
    parser.add_argument("--decode-steps", type=positive_int, default=None, help="timed steps per repetition (16)")
    args = parser.parse_args(argv)
    device = setup(args)
    repeats = args.repeats or (4 if args.quick else 6)  # even: counterbalanced rounds
    contexts = sorted(args.contexts or (QUICK_CONTEXTS if args.quick else FULL_CONTEXTS))
    args.decode_steps = args.decode_steps or (8 if args.quick else 16)

    # positions for 8192 even in quick mode, so that both modes measure the same GPT-2
    max_positions = max(max(contexts), FULL_CONTEXTS[-1]) + args.decode_steps + 1
    rnn, gpt2 = build_models(args, max_positions, device)
    models = {"hf_rnn": rnn, "gpt2": gpt2}
    with torch.inference_mode():
        rows = measure(models, contexts, args, device, repeats)

    print(
        format_table(
            [
                {
                    "context": r["context_length"],
                    "hf_rnn ms/tok": r["hf_rnn_ms_per_token"],
                    "GPT-2 ms/tok": r["gpt2_ms_per_token"],
                    "ratio": r["ratio"],
                    "hf_rnn flatness": r["flatness"],
                    "hf_rnn cache MB": r["hf_rnn_cache_bytes"] / 2**20,
                    "GPT-2 cache MB": r["gpt2_cache_bytes"] / 2**20,
                }
                for r in rows
            ],
            [
                "context",
                "hf_rnn ms/tok",
                "GPT-2 ms/tok",
                "ratio",
                "hf_rnn flatness",
                "hf_rnn cache MB",
                "GPT-2 cache MB",
            ],
        )
    )
    longest = rows[-1]
    results = {
        "headline": [
            headline(
                f"hf_rnn decode speed at context {longest['context_length']} / at {rows[0]['context_length']} "
                "(flatness)",
                longest["flatness"],
                FLATNESS_TARGET,
            ),
            headline(
                f"decode tokens/s hf_rnn / GPT-2 at context {longest['context_length']}", longest["ratio"], SPEED_TARGET
            ),
        ],
        "models": {
            "hf_rnn": {"parameters": rnn.num_parameters(), "architecture": f"{args.layers} x {args.hidden_size} LSTM"},
            "gpt2": {
                "parameters": gpt2.num_parameters(),
                "n_layer": args.layers,
                "n_embd": args.hidden_size,
                "n_head": gpt2.config.n_head,
                "n_positions": max_positions,
                "attention": gpt2.config._attn_implementation,
            },
        },
        "sizes": {
            "vocab_size": args.vocab_size,
            "contexts": contexts,
            "decode_steps": args.decode_steps,
            "repeats": repeats,
        },
        "contexts": rows,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plot(args.results_dir / f"{NAME}.png", rows)
    path = write_results(args.results_dir, NAME, results, device, args)
    print(f"parameters: hf_rnn {rnn.num_parameters():,}, GPT-2 {gpt2.num_parameters():,}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
