"""Quickstart demo: build a config and a model, generate, save, and reload through the Auto classes.

Usage:
    python training/demo.py [--output-dir outputs/quickstart]

Runs offline in seconds. (The training issue replaces this with the full tokenizer + language model recipe.)
"""

import argparse
import tempfile

import torch
from transformers import AutoModelForCausalLM

from hf_rnn import RNNConfig, RNNForCausalLM


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=None, help="where to save the model (default: a temporary folder)")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = RNNConfig(vocab_size=100, embedding_size=64, hidden_size=64, num_hidden_layers=2, cell_type="lstm",
                       tie_word_embeddings=True, eos_token_id=1, pad_token_id=0)
    model = RNNForCausalLM(config).eval()
    prompt = torch.tensor([[5, 6, 7], [0, 8, 9]])
    attention_mask = torch.tensor([[1, 1, 1], [0, 1, 1]])  # the second prompt is left-padded
    tokens = model.generate(prompt, attention_mask=attention_mask, max_new_tokens=10, do_sample=False)
    print("greedy tokens:", tokens.tolist())

    output_dir = args.output_dir or tempfile.mkdtemp(prefix="hf_rnn_quickstart_")
    model.save_pretrained(output_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(output_dir).eval()
    again = reloaded.generate(prompt, attention_mask=attention_mask, max_new_tokens=10, do_sample=False)
    print(f"saved to {output_dir}; reloaded with AutoModelForCausalLM: {type(reloaded).__name__}")
    if not torch.equal(tokens, again):
        raise SystemExit("reloaded model generated different tokens")
    print("reloaded model generates the same tokens")


if __name__ == "__main__":
    main()
