"""Inference throughput (real tokens/s, forward only, `torch.inference_mode`, eval): `RNNForSequenceClassification`
and `RNNModel` against the bare PyTorch modules a tutorial would write, with the same weights.

Usage:
    python benchmarks/inference_throughput.py                # 2 x 256 LSTM, vocab 10k, batch 32, T = 256
    python benchmarks/inference_throughput.py --quick        # T = 64, fewer repeats
    python benchmarks/inference_throughput.py --cells lstm,gru --seq-len 512

Four cases per cell type; the baseline gets hf_rnn's weights copied in (one `nn.LSTM(num_layers=2, batch_first=True)`),
and the outputs of both sides are compared (`outputs_match`):

| case | hf_rnn | baseline |
|---|---|---|
| classifier, padded | `RNNForSequenceClassification(ids, attention_mask)`, pooling "last" | lengths = mask.sum(1), `pack_padded_sequence` + nn.LSTM, `h_n[-1]` (last real token), linear |
| classifier, full | the same, every row full length (mask of ones) | nn.LSTM, `h_n[-1]`, linear |
| backbone, padded | `RNNModel(ids, attention_mask).last_hidden_state` | pack, nn.LSTM, `pad_packed_sequence` |
| backbone, full | `RNNModel(ids).last_hidden_state` | nn.LSTM outputs |

Padded batches: lengths uniform in [T/2, T], right padding. Headline: hf_rnn tokens/s / baseline tokens/s per case,
target 0.95.
"""

import sys

import torch
from common import (
    base_parser,
    format_table,
    headline,
    positive_int,
    setup,
    time_alternating,
    write_results_and_plot,
)
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hf_rnn import RNNConfig, RNNForSequenceClassification

NAME = "inference_throughput"
TARGET = 0.95
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


class TutorialClassifier(nn.Module):
    """embedding -> multi-layer nn.LSTM/GRU/RNN (batch first) -> linear on the last real token's state."""

    def __init__(
        self, cell_type: str, vocab_size: int, embedding_size: int, hidden_size: int, layers: int, labels: int
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        kwargs = {"nonlinearity": cell_type[4:]} if cell_type.startswith("rnn") else {}
        module = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell_type, nn.RNN)
        self.rnn = module(embedding_size, hidden_size, layers, batch_first=True, **kwargs)
        self.fc = nn.Linear(hidden_size, labels)
        self.is_lstm = cell_type == "lstm"

    def encode(self, input_ids, attention_mask=None):
        """[B, T] -> outputs ([B, T, H], or packed with a mask) and the last layer's final state [B, H]."""
        embedded = self.embedding(input_ids)
        if attention_mask is not None:
            lengths = attention_mask.sum(dim=1).cpu()
            embedded = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(embedded)
        return outputs, (hidden[0] if self.is_lstm else hidden)[-1]

    def classify(self, input_ids, attention_mask=None):
        return self.fc(self.encode(input_ids, attention_mask)[1])

    def features(self, input_ids, attention_mask=None):
        outputs, _ = self.encode(input_ids, attention_mask)
        if attention_mask is not None:
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=input_ids.shape[1])
        return outputs


def copy_weights(model: RNNForSequenceClassification, baseline: TutorialClassifier) -> None:
    """hf_rnn's per-layer modules (`model.model.layers[i].rnn`, one layer each) -> one multi-layer module."""
    with torch.no_grad():
        baseline.embedding.weight.copy_(model.model.embed_tokens.weight)
        for i, layer in enumerate(model.model.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(baseline.rnn, f"{name}_l{i}").copy_(getattr(layer.rnn, f"{name}_l0"))
        baseline.fc.weight.copy_(model.score.weight)
        baseline.fc.bias.copy_(model.score.bias)


def run_cell(cell_type: str, args, device, repeats: int, seq_len: int) -> list[dict]:
    config = RNNConfig(
        vocab_size=args.vocab_size,
        embedding_size=args.hidden_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        cell_type=cell_type,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = RNNForSequenceClassification(config).to(device).eval()
    baseline = TutorialClassifier(cell_type, args.vocab_size, args.hidden_size, args.hidden_size, args.layers, 2)
    baseline = baseline.to(device).eval()
    copy_weights(model, baseline)

    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, args.vocab_size, (args.batch_size, seq_len), generator=generator).to(device)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (args.batch_size,), generator=generator)
    padded_mask = (torch.arange(seq_len).unsqueeze(0) < lengths.unsqueeze(1)).long().to(device)  # right padding
    full_mask = torch.ones_like(padded_mask)

    cases = {
        "classifier, padded": (
            lambda: model(input_ids=input_ids, attention_mask=padded_mask).logits,
            lambda: baseline.classify(input_ids, padded_mask),
            padded_mask,
        ),
        "classifier, full": (
            lambda: model(input_ids=input_ids, attention_mask=full_mask).logits,
            lambda: baseline.classify(input_ids),
            full_mask,
        ),
        "backbone, padded": (
            lambda: model.model(input_ids=input_ids, attention_mask=padded_mask).last_hidden_state,
            lambda: baseline.features(input_ids, padded_mask),
            padded_mask,
        ),
        "backbone, full": (
            lambda: model.model(input_ids=input_ids).last_hidden_state,
            lambda: baseline.features(input_ids),
            full_mask,
        ),
    }
    rows = []
    with torch.inference_mode():
        for case, (hf_rnn_run, baseline_run, mask) in cases.items():
            difference = (hf_rnn_run() - baseline_run()).abs().max().item()
            timing = time_alternating(hf_rnn_run, baseline_run, repeats, device=device)
            real_tokens = int(mask.sum())
            rows.append(
                {
                    "cell_type": cell_type,
                    "case": case,
                    "real_tokens_per_batch": real_tokens,
                    "max_abs_difference": difference,
                    "outputs_match": difference < 1e-4,
                    **timing.summary(real_tokens),
                }
            )
    return rows


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--cells", default="lstm", help=f"comma-separated, from {list(CELLS)}")
    parser.add_argument("--hidden-size", type=positive_int, default=256, help="embedding and hidden width")
    parser.add_argument("--layers", type=positive_int, default=2)
    parser.add_argument("--vocab-size", type=positive_int, default=10000)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--seq-len", type=positive_int, default=None, help="T, the padded length (256; quick 64)")
    args = parser.parse_args(argv)
    cells = [cell.strip() for cell in args.cells.split(",") if cell.strip()]
    if not cells or any(cell not in CELLS for cell in cells):
        parser.error(f"--cells: choose from {list(CELLS)}, got {args.cells!r}")
    device = setup(args)
    repeats = args.repeats or (5 if args.quick else 15)
    seq_len = args.seq_len or (64 if args.quick else 256)
    if seq_len < 2:
        parser.error("--seq-len must be at least 2 (lengths are drawn from [T/2, T])")

    rows = [row for cell in cells for row in run_cell(cell, args, device, repeats, seq_len)]
    print(
        format_table(
            [
                {
                    "cell": r["cell_type"],
                    "case": r["case"],
                    "hf_rnn tok/s": r["hf_rnn_tokens_per_second"],
                    "baseline tok/s": r["baseline_tokens_per_second"],
                    "ratio": r["ratio"],
                    "outputs match": r["outputs_match"],
                }
                for r in rows
            ],
            ["cell", "case", "hf_rnn tok/s", "baseline tok/s", "ratio", "outputs match"],
        )
    )
    labels = [f"{r['cell_type']}: {r['case']}" for r in rows]
    results = {
        "headline": [
            headline(f"forward tokens/s, hf_rnn / bare PyTorch, {label}", r["ratio"], TARGET)
            for label, r in zip(labels, rows)
        ],
        "outputs_match": all(r["outputs_match"] for r in rows),
        "sizes": {
            "hidden_size": args.hidden_size,
            "layers": args.layers,
            "vocab_size": args.vocab_size,
            "batch_size": args.batch_size,
            "seq_len": seq_len,
            "repeats": repeats,
        },
        "cases": rows,
    }
    return write_results_and_plot(
        args,
        NAME,
        results,
        device,
        rows,
        labels,
        TARGET,
        f"Forward tokens/s, batch {args.batch_size}, T {seq_len}: hf_rnn vs bare PyTorch",
    )


if __name__ == "__main__":
    sys.exit(main())
