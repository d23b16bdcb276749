"""The `hf-rnn` command line (also `python -m hf_rnn.cli`).

Usage:
    hf-rnn convert rnnlm.pt rnnlm-hf                       # tutorial RNNLM -> RNNForCausalLM, all inferred
    hf-rnn convert classifier.pt sentiment-hf --task sequence-classification
    hf-rnn convert wlm.pt wlm-hf --format word_language_model --dropout 0.2

Each subcommand is one entry of `SUBCOMMANDS`: name -> (function adding its arguments to an argparse parser, function
running it on the parsed arguments and returning the exit status). To add one, write those two functions here and
register them; import heavy modules inside the run function so that `hf-rnn --help` stays fast. A `ValueError` or
`OSError` from a run function is a user error: one line on stderr, exit status 2, no traceback.
"""

import argparse
import sys


# ---------------------------------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------------------------------


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="state dict file: torch.save(model.state_dict(), path), or .safetensors")
    parser.add_argument(
        "output_dir", help="folder to write the hf_rnn model to (created; must not exist unless --overwrite)"
    )
    parser.add_argument(
        "--format", choices=["tutorial", "word_language_model"], help="source format (default: from the key names)"
    )
    parser.add_argument(
        "--task",
        choices=["causal-lm", "sequence-classification", "token-classification"],
        help="head to build (default: causal-lm when the head spans the vocabulary, else sequence-classification)",
    )
    parser.add_argument(
        "--nonlinearity",
        choices=["tanh", "relu"],
        help="of a vanilla nn.RNN; cannot be read from the weights (default: tanh)",
    )
    parser.add_argument(
        "--cell-type",
        type=str.lower,
        choices=["rnn_tanh", "rnn_relu", "lstm", "gru"],
        help="checked against the weights' gate count (default: inferred; word_language_model's LSTM, GRU... too)",
    )
    parser.add_argument("--num-labels", type=int, help="classification: checked against the head's outputs")
    parser.add_argument(
        "--tie-word-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="causal LM: share the head and embedding weights (default: when they are equal)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        help="embedding, between-layer and output dropout for training on (default 0; word_language_model's --dropout)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output_dir")


def _run_convert(args: argparse.Namespace) -> int:
    """Convert a plain-PyTorch RNN/LSTM/GRU checkpoint into an hf_rnn model with identical outputs."""
    from .convert import convert_checkpoint

    model = convert_checkpoint(
        args.input,
        args.output_dir,
        overwrite=args.overwrite,
        format=args.format,
        task=args.task,
        cell_type=args.cell_type,
        nonlinearity=args.nonlinearity,
        num_labels=args.num_labels,
        tie_word_embeddings=args.tie_word_embeddings,
        dropout=args.dropout,
    )
    config = model.config
    print(
        f"Saved {type(model).__name__} (cell_type={config.cell_type}, num_hidden_layers={config.num_hidden_layers}, "
        f"hidden_size={config.hidden_size}, vocab_size={config.vocab_size}, bidirectional={config.bidirectional}) "
        f"to {args.output_dir}"
    )
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------

SUBCOMMANDS = {
    "convert": (_add_convert_arguments, _run_convert),
}


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the subcommand and return its exit status."""
    parser = argparse.ArgumentParser(prog="hf-rnn", description="Classic RNN, LSTM and GRU models for transformers.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, run) in SUBCOMMANDS.items():
        summary = (run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else None
        subparser = subparsers.add_parser(name, help=summary, description=summary)
        add_arguments(subparser)
        subparser.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())  # one line, whatever the message's layout
        print(f"hf-rnn {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
