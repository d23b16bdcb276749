"""Train a tokenizer for hf_rnn models and save it with `save_pretrained`.

Usage:
    python training/train_tokenizer.py --output_dir outputs/tokenizer                     # byte-level BPE, 8000 tokens,
                                                                                          # on the embedded corpus
    python training/train_tokenizer.py --kind char --output_dir outputs/char-tokenizer
    python training/train_tokenizer.py --kind unigram --vocab_size 16000 \\
        --train_files ../shared/data/ptb/train.txt --output_dir outputs/ptb-unigram
    python training/train_tokenizer.py --dataset_name wikitext --dataset_config wikitext-2-raw-v1 \\
        --output_dir outputs/wikitext-bpe                                                 # needs the Hub or its cache
    python training/train_tokenizer.py --help                                             # every option

Kinds: bpe (byte-level, lossless on any text), wordpiece, unigram, char. Special tokens <pad> <s> </s> <unk> get ids
0..3; none is added automatically. Trains on the train split only (a held-out validation share is never seen), and
writes output_dir all at once: a failed run leaves none behind. `--max_texts 200` makes a quick dry run.

The work is done by `hf_rnn.tokenization.main` (also behind `hf-rnn train-tokenizer`); this file only calls it.
"""

import sys

from hf_rnn.tokenization import main


if __name__ == "__main__":
    sys.exit(main())
