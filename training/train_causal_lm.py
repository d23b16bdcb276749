"""Train a recurrent language model (RNN, LSTM, GRU) with transformers' Trainer, and save it ready to push.

Usage:
    python training/train_causal_lm.py --output_dir outputs/lm          # embedded corpus, BPE tokenizer, 2-layer LSTM
    python training/train_causal_lm.py --batching stateful --block_size 64 --per_device_train_batch_size 32 \\
        --cell_type lstm --embedding_size 256 --hidden_size 256 --tie_word_embeddings true \\
        --num_train_epochs 3 --eval_strategy steps --eval_steps 200 --output_dir outputs/lm-tbptt
    python training/train_causal_lm.py --train_files train.txt --validation_files valid.txt \\
        --tokenizer_name_or_path outputs/tokenizer --cell_type gru --output_dir outputs/gru
    python training/train_causal_lm.py --dataset_name wikitext --dataset_config wikitext-2-raw-v1 \\
        --output_dir outputs/wikitext                                      # needs the Hub or its cache
    python training/train_causal_lm.py --output_dir outputs/lm --resume_from_checkpoint true   # last checkpoint
    python training/train_causal_lm.py arguments.json                     # every option in one JSON object
    torchrun --nproc_per_node 2 training/train_causal_lm.py arguments.json   # several processes (gloo on CPU)
    python training/train_causal_lm.py --help                              # every option, Trainer's included

Batching: "blocks" (run_clm's independent fixed-length blocks, each from a zero state) or "stateful" (truncated
backpropagation through time: contiguous streams, the recurrent state carried from batch to batch, detached).
Every TrainingArguments option works (--max_grad_norm, --gradient_accumulation_steps, --lr_scheduler_type,
--eval_strategy, --save_steps, --report_to tensorboard, ...). `--max_steps 20 --max_train_samples 200` makes a
quick dry run.

Writes to output_dir: model.safetensors, config.json, the tokenizer, generation_config.json, all_results.json,
loss_curve.png and README.md (the model card); checkpoint-N/ folders as Trainer saves them.

The work is done by `hf_rnn.language_modeling.main` (also behind `hf-rnn train-lm`); this file only calls it.
"""

import sys

from hf_rnn.language_modeling import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
