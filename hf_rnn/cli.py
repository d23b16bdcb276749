"""The `hf-rnn` command line (also `python -m hf_rnn.cli`).

Usage:
    hf-rnn convert rnnlm.pt rnnlm-hf                       # tutorial RNNLM -> RNNForCausalLM, all inferred
    hf-rnn convert classifier.pt sentiment-hf --task sequence-classification
    hf-rnn convert wlm.pt wlm-hf --format word_language_model --dropout 0.2
    hf-rnn generate outputs/lm "The meaning of" --max-new-tokens 40 --do-sample --top-p 0.9   # streams the text
    echo "Once upon" | hf-rnn generate user/rnn-lm --greedy                              # prompt from stdin
    hf-rnn train-classifier --train_file train.csv --output_dir outputs/classifier      # see --help
    hf-rnn train-lm --batching stateful --output_dir outputs/lm                          # see --help
    hf-rnn train-tokenizer --kind bpe --vocab_size 8000 --output_dir outputs/tokenizer  # see --help
    hf-rnn push outputs/lm user/rnn-lm                                     # publish a saved model on the Hub

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
# generate
# ---------------------------------------------------------------------------------------------------------------------


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="hf_rnn language model: a folder written by save_pretrained, or a Hub repo id")
    parser.add_argument(
        "prompt", nargs="?", help="text to continue (default, or '-': read from stdin, one final newline dropped)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=50, help="number of tokens to generate (default 50)")
    strategy = parser.add_mutually_exclusive_group()
    strategy.add_argument(
        "--do-sample",
        dest="do_sample",
        action="store_true",
        default=None,
        help="sample the next token (default: the model's generation_config.json, usually greedy)",
    )
    strategy.add_argument(
        "--greedy", dest="do_sample", action="store_false", default=None, help="always take the most likely token"
    )
    parser.add_argument("--temperature", type=float, help="sampling: divide the logits by this (> 0)")
    parser.add_argument("--top-k", type=int, help="sampling: keep the k most likely tokens (0: all)")
    parser.add_argument("--top-p", type=float, help="sampling: keep the most likely tokens up to this probability mass")
    parser.add_argument(
        "--num-beams", type=int, help="beam search with this many beams (the text is printed at the end, not streamed)"
    )
    parser.add_argument("--repetition-penalty", type=float, help="> 1 discourages repeating tokens (CTRL's penalty)")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible sampling")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow running the modeling code saved with a model whose library is not installed (hf_rnn models "
        "always use the installed hf_rnn classes)",
    )


def _generation_options(args: argparse.Namespace) -> dict:
    """The generate() keyword arguments the user set, checked; unset ones come from the model's generation config."""
    checks = {
        "max_new_tokens": (lambda value: value >= 1, "an integer >= 1"),
        "temperature": (lambda value: value > 0, "a number > 0"),
        "top_k": (lambda value: value >= 0, "an integer >= 0"),
        "top_p": (lambda value: 0 < value <= 1, "a number in (0, 1]"),
        "num_beams": (lambda value: value >= 1, "an integer >= 1"),
        "repetition_penalty": (lambda value: value > 0, "a number > 0"),
    }
    options = {}
    for name, (is_valid, expected) in checks.items():
        value = getattr(args, name)
        if value is None:
            continue
        if not is_valid(value):
            raise ValueError(f"--{name.replace('_', '-')} must be {expected}, got {value}.")
        options[name] = value
    if args.do_sample is not None:
        options["do_sample"] = args.do_sample
    return options


def _read_prompt(prompt: str | None) -> str:
    if prompt is not None and prompt != "-":
        return prompt
    if sys.stdin.isatty():
        print("Reading the prompt from stdin (end it with Ctrl-D)...", file=sys.stderr)
    text = sys.stdin.read()
    return text.removesuffix("\n")  # the newline that `echo` or the terminal adds


def _run_generate(args: argparse.Namespace) -> int:
    """Generate text with an hf_rnn language model, printing the tokens as they are produced."""
    options = _generation_options(args)  # checked before the (slow) imports and loading
    prompt = _read_prompt(args.prompt)

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TextStreamer, set_seed

    config = AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(name.endswith("ForCausalLM") for name in architectures):
        raise ValueError(
            f"{args.model!r} holds a {', '.join(architectures)}, not a language model: generate needs a model saved "
            "from a ...ForCausalLM class (its LM head would otherwise be random)."
        )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).to(device).eval()
    if args.seed is not None:
        set_seed(args.seed)

    inputs = tokenizer(prompt, return_tensors="pt")
    if inputs["input_ids"].shape[1] == 0:  # no prompt: start from the beginning-of-sequence (or end) token
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError(
                "The prompt is empty and the tokenizer has no bos or eos token to start from; give a prompt."
            )
        inputs = {"input_ids": torch.tensor([[start]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        options["pad_token_id"] = tokenizer.pad_token_id

    # TextStreamer prints the prompt, then each new piece of text as soon as it decodes to whole words; beam search
    # cannot stream (the best beam is known only at the end), so its text is printed once done.
    beams = options.get("num_beams", model.generation_config.num_beams or 1)
    streamer = TextStreamer(tokenizer, skip_special_tokens=True) if beams == 1 else None
    with torch.no_grad():
        output_ids = model.generate(**inputs, **options, streamer=streamer)
    if streamer is None:
        print(tokenizer.decode(output_ids[0], skip_special_tokens=True), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# Training recipes: their own HfArgumentParser reads every argument after the subcommand
# ---------------------------------------------------------------------------------------------------------------------


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Hand every argument after the subcommand, `--help` included, to the recipe's own HfArgumentParser."""
    parser.prefix_chars = "\0"  # nothing looks like an option to this parser, so nothing is consumed here
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the recipe's options (see --help), or a JSON file")


def _run_train_classifier(args: argparse.Namespace) -> int:
    """Train a text classifier from scratch or from an hf_rnn language model (see --help for every option)."""
    from .classification import main as train_classifier_main

    return train_classifier_main(args.arguments)


def _run_train_lm(args: argparse.Namespace) -> int:
    """Train a recurrent language model: blocks or stateful TBPTT (see --help for every option)."""
    from .language_modeling import main as train_lm_main

    return train_lm_main(args.arguments)


def _run_train_tokenizer(args: argparse.Namespace) -> int:
    """Train a byte-level BPE, WordPiece, Unigram, character or word-level tokenizer (see --help for every option)."""
    from .tokenization import main as train_tokenizer_main

    return train_tokenizer_main(args.arguments)


# ---------------------------------------------------------------------------------------------------------------------
# push
# ---------------------------------------------------------------------------------------------------------------------


def _add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a saved hf_rnn model: the folder save_pretrained (or hf-rnn convert) wrote")
    parser.add_argument("repo_id", help="Hub repository, namespace/name (created if it does not exist)")
    parser.add_argument(
        "--private", action="store_true", help="create the repository private (an existing one keeps its visibility)"
    )
    parser.add_argument("--revision", help="branch to push to (created from main if missing; default: main)")
    parser.add_argument("--commit-message", help="commit summary (default: 'Upload hf_rnn model with hf-rnn push')")


def _run_push(args: argparse.Namespace) -> int:
    """Upload a saved hf_rnn model folder to the Hugging Face Hub (safetensors, config with auto_map, sources)."""
    from .hub import push_folder

    result = push_folder(
        args.folder,
        args.repo_id,
        private=True if args.private else None,
        revision=args.revision,
        commit_message=args.commit_message,
    )
    if result.added:
        print(f"Added to the upload: {', '.join(result.added)}")
    if result.changed:
        print(f"Pushed {args.folder} to {result.repo_id} ({result.revision}): {result.commit_url}")
    else:
        print(f"Nothing to push: {result.repo_id} ({result.revision}) already holds these files at {result.commit_oid}")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------

SUBCOMMANDS = {
    "convert": (_add_convert_arguments, _run_convert),
    "generate": (_add_generate_arguments, _run_generate),
    "train-classifier": (_add_recipe_arguments, _run_train_classifier),
    "train-lm": (_add_recipe_arguments, _run_train_lm),
    "train-tokenizer": (_add_recipe_arguments, _run_train_tokenizer),
    "push": (_add_push_arguments, _run_push),
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
