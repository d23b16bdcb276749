"""Greedy generation speed (new tokens/s): `RNNForCausalLM.generate()` against the decode loop of a tutorial, with the
same weights, and both against the weight-streaming floor of the machine.

Usage:
    python benchmarks/generation_speed.py                  # 2 x 256 LSTM, vocab 10k, batch 1 and 32, 100 new tokens
    python benchmarks/generation_speed.py --quick          # 30 new tokens, fewer repeats
    python benchmarks/generation_speed.py --profile        # also torch.profiler of one batch-1 generate(): top 25 ops
    python benchmarks/generation_speed.py --batch-sizes 1,8 --new-tokens 200

- hf_rnn: `model.generate(prompt, attention_mask=ones, do_sample=False, max_new_tokens=N, min_new_tokens=N)`, the
  public API only, so any change to the model's decode path shows up here.
- baseline: the loop a tutorial writes: one `nn.LSTM(num_layers=2, batch_first=True)` holding hf_rnn's weights
  (copied from `model.model.layers[i].rnn`), the prompt in one call, then per step: argmax of the linear head,
  append, feed that token ([B, 1]) with the carried hidden state.
- both produce N tokens after a 16-token random prompt; `tokens_identical` checks they are the same tokens.
- floor: a decode step must read every weight it uses once (recurrent and input weights of every layer, biases,
  the LM head; the embedding row is negligible). floor time per step = those bytes / the memory bandwidth measured
  here with a large tensor `.copy_()` (bytes read + written; the best of several copies). `floor_fraction` =
  floor time / measured time per step (1.0 = as fast as the memory allows; the weights may also sit in cache).

Headline: generate() tokens/s / tutorial loop tokens/s at batch 1 (target 1.0) and at each other batch size.
"""

import statistics
import sys
import time

import torch
from common import (
    base_parser,
    format_table,
    headline,
    int_list,
    positive_int,
    setup,
    time_alternating,
    write_results_and_plot,
)
from torch import nn

from hf_rnn import RNNConfig, RNNForCausalLM

NAME = "generation_speed"
TARGET = 1.0
PROMPT_LENGTH = 16


class TutorialLM(nn.Module):
    """embedding -> nn.LSTM(num_layers, batch_first) -> linear head."""

    def __init__(self, vocab_size: int, hidden_size: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.lstm = nn.LSTM(hidden_size, hidden_size, layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, vocab_size)


def copy_weights(model: RNNForCausalLM, baseline: TutorialLM) -> None:
    with torch.no_grad():
        baseline.embedding.weight.copy_(model.model.embed_tokens.weight)
        for i, layer in enumerate(model.model.layers):  # one single-layer nn.LSTM per hf_rnn layer
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(baseline.lstm, f"{name}_l{i}").copy_(getattr(layer.rnn, f"{name}_l0"))
        baseline.fc.weight.copy_(model.lm_head.weight)
        baseline.fc.bias.copy_(model.lm_head.bias)


@torch.inference_mode()
def tutorial_generate(model: TutorialLM, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Greedy decoding as a tutorial writes it. prompt [B, P] -> new tokens [B, N]."""
    output, hidden = model.lstm(model.embedding(prompt))
    logits = model.fc(output[:, -1])  # [B, V]
    tokens = []
    for step in range(new_tokens):
        next_token = logits.argmax(dim=-1, keepdim=True)  # [B, 1]
        tokens.append(next_token)
        if step < new_tokens - 1:  # the last token needs no forward (generate() does not run one either)
            output, hidden = model.lstm(model.embedding(next_token), hidden)
            logits = model.fc(output[:, -1])
    return torch.cat(tokens, dim=1)


def decode_step_bytes(model: RNNForCausalLM) -> int:
    """Bytes of the weights one decode step reads: every recurrent layer's parameters and the LM head."""
    parameters = [p for layer in model.model.layers for p in layer.parameters()] + list(model.lm_head.parameters())
    return sum(p.numel() * p.element_size() for p in parameters)


def memory_bandwidth(device, megabytes: int = 256, copies: int = 7) -> dict:
    """Bytes per second of `dst.copy_(src)` on a tensor much larger than the caches, counting read + write."""
    source = torch.ones(megabytes * 2**20 // 4, device=device)
    destination = torch.empty_like(source)
    seconds = []
    for _ in range(copies):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        destination.copy_(source)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    moved = 2 * source.numel() * source.element_size()
    return {
        "best_bytes_per_second": moved / min(seconds[1:]),
        "median_bytes_per_second": moved / statistics.median(seconds[1:]),
    }


def profile_generate(model: RNNForCausalLM, prompt: torch.Tensor, new_tokens: int) -> str:
    """torch.profiler of one batch-1 generate(): the top 25 operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if prompt.is_cuda else [])
    kwargs = {"do_sample": False, "max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
    model.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)  # warm
    with profile(activities=activities) as profiler:
        model.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--hidden-size", type=positive_int, default=256, help="embedding and hidden width")
    parser.add_argument("--layers", type=positive_int, default=2)
    parser.add_argument("--vocab-size", type=positive_int, default=10000)
    parser.add_argument("--batch-sizes", type=int_list, default=[1, 32], help="comma-separated (default 1,32)")
    parser.add_argument("--new-tokens", type=positive_int, default=None, help="N new tokens (100; quick 30)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler of one batch-1 generate(), top 25")
    args = parser.parse_args(argv)
    device = setup(args)
    repeats = args.repeats or (5 if args.quick else 15)
    new_tokens = args.new_tokens or (30 if args.quick else 100)

    torch.manual_seed(0)
    config = RNNConfig(
        vocab_size=args.vocab_size,
        embedding_size=args.hidden_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        cell_type="lstm",
    )
    model = RNNForCausalLM(config).to(device).eval()
    baseline = TutorialLM(args.vocab_size, args.hidden_size, args.layers).to(device).eval()
    copy_weights(model, baseline)
    step_bytes = decode_step_bytes(model)
    bandwidth = memory_bandwidth(device)
    floor_seconds = step_bytes / bandwidth["best_bytes_per_second"]

    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch_size in args.batch_sizes:
        prompt = torch.randint(0, args.vocab_size, (batch_size, PROMPT_LENGTH), generator=generator).to(device)
        mask = torch.ones_like(prompt)

        def hf_rnn_run(prompt=prompt, mask=mask):
            return model.generate(
                prompt, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens
            )[:, PROMPT_LENGTH:]

        def baseline_run(prompt=prompt):
            return tutorial_generate(baseline, prompt, new_tokens)

        hf_rnn_tokens, baseline_tokens = hf_rnn_run(), baseline_run()
        identical = hf_rnn_tokens.shape == baseline_tokens.shape and torch.equal(hf_rnn_tokens, baseline_tokens)
        timing = time_alternating(hf_rnn_run, baseline_run, repeats, device=device)
        summary = timing.summary(batch_size * new_tokens)
        hf_step = statistics.median(timing.candidate_seconds) / new_tokens
        baseline_step = statistics.median(timing.baseline_seconds) / new_tokens
        rows.append(
            {
                "batch_size": batch_size,
                "new_tokens": new_tokens,
                "tokens_identical": bool(identical),
                "hf_rnn_new_tokens": list(hf_rnn_tokens.shape),
                "baseline_new_tokens": list(baseline_tokens.shape),
                **summary,
                "hf_rnn_ms_per_step": 1000 * hf_step,
                "baseline_ms_per_step": 1000 * baseline_step,
                "floor_ms_per_step": 1000 * floor_seconds,
                "hf_rnn_floor_fraction": floor_seconds / hf_step,
                "baseline_floor_fraction": floor_seconds / baseline_step,
            }
        )

    print(
        format_table(
            [
                {
                    "batch": r["batch_size"],
                    "generate() tok/s": r["hf_rnn_tokens_per_second"],
                    "tutorial tok/s": r["baseline_tokens_per_second"],
                    "ratio": r["ratio"],
                    "ms/step hf_rnn": r["hf_rnn_ms_per_step"],
                    "ms/step tutorial": r["baseline_ms_per_step"],
                    "floor ms/step": r["floor_ms_per_step"],
                    "identical": r["tokens_identical"],
                }
                for r in rows
            ],
            [
                "batch",
                "generate() tok/s",
                "tutorial tok/s",
                "ratio",
                "ms/step hf_rnn",
                "ms/step tutorial",
                "floor ms/step",
                "identical",
            ],
        )
    )
    profile = None
    if args.profile:
        prompt = torch.randint(0, args.vocab_size, (1, PROMPT_LENGTH), generator=generator).to(device)
        profile = profile_generate(model, prompt, new_tokens)
        print(f"\ntorch.profiler, one batch-1 generate() of {new_tokens} tokens, top 25 by self CPU time:\n{profile}")

    results = {
        "headline": [
            headline(f"greedy generate() tokens/s / tutorial decode loop, batch {r['batch_size']}", r["ratio"], TARGET)
            for r in rows
        ],
        "tokens_identical": all(r["tokens_identical"] for r in rows),
        "sizes": {
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "vocab_size": args.vocab_size,
            "prompt_length": PROMPT_LENGTH,
            "new_tokens": new_tokens,
            "repeats": repeats,
        },
        "floor": {"decode_step_weight_bytes": step_bytes, **bandwidth, "floor_ms_per_step": 1000 * floor_seconds},
        "batches": rows,
    }
    if profile is not None:
        results["profile_top25"] = profile
    return write_results_and_plot(
        args,
        NAME,
        results,
        device,
        rows,
        [f"batch {r['batch_size']}" for r in rows],
        TARGET,
        f"Greedy generation, {new_tokens} new tokens: generate() vs tutorial loop",
    )


if __name__ == "__main__":
    sys.exit(main())
