"""The main demo: raw text in, a trained, documented, ready-to-push recurrent language model out. Offline, on CPU.

Usage:
    python training/demo.py                           # what `make demo` runs: about 3 minutes on 2 idle CPU cores
    python training/demo.py --output-dir outputs/demo-short --max-steps 400 --prompt "Return the"   # about 1.5 min
    python training/demo.py --max-steps 20            # a quick look at every step (poor model)

What it does, through the project's own recipe (`hf_rnn.language_modeling`, the code behind `hf-rnn train-lm`):

1. Loads the embedded default corpus (`hf_rnn.data`: the Python standard library's documentation, which every Python
   installation carries; no download) and holds 5 % of its documents out for validation.
2. Trains a byte-level BPE tokenizer on the training documents (`hf_rnn.tokenization.train_tokenizer`).
3. Trains a one-layer LSTM language model with tied input/output embeddings using transformers' `Trainer` (progress
   bar), with stateful truncated backpropagation through time: the text is cut into 32 contiguous streams read 64
   tokens at a time, the recurrent state carried from batch to batch, as the classic recurrent language models were
   trained (pytorch/examples word_language_model, AWD-LSTM). 1000 steps of 2048 tokens: about 5 passes over the
   0.42 M training tokens. Measured on 2 idle CPU cores: about 175 s in all, validation perplexity about 73.
4. Reports the validation loss and perplexity next to that of a uniform guess (the vocabulary size), writes the loss
   curve, and saves the model folder ready to push: weights (safetensors), config, tokenizer, generation config and
   a model card (README.md).
5. Loads the folder back with `AutoModelForCausalLM` / `AutoTokenizer` and samples a continuation of a prompt, next
   to what the same architecture writes untrained.

Afterwards: `hf-rnn generate outputs/demo "The function"` streams more samples, and
`hf-rnn push outputs/demo <user>/<repo>` (or `hf upload`, `model.push_to_hub`) publishes the folder.
"""

import argparse
import copy
import sys
import time
from pathlib import Path


REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # `python training/demo.py` from a checkout works without installing hf_rnn

# Sizes chosen to train in under 3 minutes on 2 idle CPU cores (about 6 steps per second): a one-layer LSTM 256 wide
# over a 4000-token vocabulary (1.55 M parameters, the embedding tied with the output layer), 32 streams x 64 tokens
# = 2048 tokens per step.
DEMO_OPTIONS = {
    "tokenizer_vocab_size": 4000,
    "cell_type": "lstm",
    "embedding_size": 256,
    "hidden_size": 256,
    "num_hidden_layers": 1,
    "tie_word_embeddings": "true",
    "embedding_dropout": 0.1,  # about 5 passes over 0.4 M tokens: a little dropout keeps validation loss falling
    "output_dropout": 0.1,
    "batching": "stateful",
    "block_size": 64,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 32,
    "learning_rate": 5e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "logging_steps": 10,
    "eval_strategy": "steps",
    "save_strategy": "no",  # a demo that needs no checkpoints: the final model is saved at the end
    "report_to": "none",
    "use_cpu": "true",
    "seed": 0,
    "overwrite": "true",  # `make demo` twice replaces the earlier demo model
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=str(REPOSITORY / "outputs" / "demo"), help="model folder to write")
    parser.add_argument("--max-steps", type=int, default=1000, help="optimizer steps of 2048 tokens (default 1000)")
    parser.add_argument("--prompt", default="The", help="text the trained model continues")
    args = parser.parse_args()
    start = time.perf_counter()

    import torch

    from hf_rnn.language_modeling import main as train_language_model

    options = dict(DEMO_OPTIONS, max_steps=args.max_steps, eval_steps=max(1, args.max_steps // 5))
    options["output_dir"] = args.output_dir
    argv = [item for name, value in options.items() for item in (f"--{name}", str(value))]
    print(
        "Training a tokenizer and an LSTM language model on the embedded corpus; the same as\n  hf-rnn train-lm "
        + " ".join(argv)
        + "\n",
        flush=True,
    )
    train_language_model(argv)

    # --- the saved folder, loaded as anyone would load it ----------------------------------------------------------
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    import hf_rnn  # noqa: F401  (registers the hf_rnn model type with the Auto classes)

    output_dir = Path(args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForCausalLM.from_pretrained(output_dir).eval()
    results = json.loads((output_dir / "all_results.json").read_text())
    vocabulary = model.config.vocab_size
    print(f"\nValidation perplexity: {results['eval_perplexity']:.1f}   (loss {results['eval_loss']:.3f} nats/token)")
    print(f"A uniform guess over the {vocabulary}-token vocabulary has perplexity {vocabulary}.")

    inputs = tokenizer(args.prompt, return_tensors="pt")
    set_seed(0)
    with torch.no_grad():
        sample = model.generate(**inputs, max_new_tokens=80)  # the sampling defaults of generation_config.json
    print(f"\nSample from the trained model (prompt {args.prompt!r}):\n" + "-" * 80)
    print(tokenizer.decode(sample[0], skip_special_tokens=True))
    print("-" * 80)
    untrained = type(model)(model.config).eval()
    short = copy.deepcopy(model.generation_config)
    short.max_new_tokens = 30
    set_seed(0)
    with torch.no_grad():
        noise = untrained.generate(**inputs, generation_config=short)
    print(
        "The same architecture untrained, for contrast:\n  "
        + repr(tokenizer.decode(noise[0], skip_special_tokens=True))
    )

    curve = output_dir / "loss_curve.png"
    print(f"\nLoss curve: {curve if curve.is_file() else 'not written (pip install matplotlib)'}")
    print(f"Model folder, ready to push: {output_dir}")
    for path in sorted(output_dir.iterdir()):
        if path.is_file():
            print(f"  {path.name:28s} {path.stat().st_size:>12,d} bytes")
    print(f"\nWall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
