"""Train an hf_rnn text classifier (RNNForSequenceClassification) with Trainer, from scratch or from a language model.

Usage:
    # from scratch: a WordPiece tokenizer is trained on the training texts; labels are read from the data
    python training/train_classifier.py --train_file train.csv --validation_file dev.csv --test_file test.csv \\
        --text_column text --label_column label --bidirectional --num_train_epochs 5 --output_dir outputs/classifier
    # ULMFiT: start from an hf_rnn language model (its tokenizer, embedding and recurrent layers; a new head)
    python training/train_classifier.py --model_name_or_path outputs/lm --train_file train.json \\
        --validation_file dev.json --output_dir outputs/classifier-ulmfit
    # a Hub dataset (needs the network or its cache), every option from a JSON file
    python training/train_classifier.py --dataset_name imdb --output_dir outputs/imdb --max_train_samples 2000
    python training/train_classifier.py arguments.json
    python training/train_classifier.py --help                     # every option, Trainer's included

Files: .csv, .tsv, .json or .jsonl with a text column and a label column (strings or integers). Label ids follow the
sorted training labels and are written to the config (id2label / label2id). Reports accuracy and macro-F1 on the
validation and test data; saves the model (safetensors), tokenizer, all_results.json and a model card to output_dir,
all at once: bad input fails before training, and a failed run leaves no output folder.

The work is done by `hf_rnn.classification.main` (also behind `hf-rnn train-classifier`); this file only calls it.
"""

import sys

from hf_rnn.classification import main


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
