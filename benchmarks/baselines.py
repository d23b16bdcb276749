"""Plain-PyTorch baselines for the quality benchmarks: a module that ptb_quality.py imports, not a benchmark script.

`WordLanguageModel` and `train_word_language_model` are pytorch/examples word_language_model (`data.py`, `model.py`,
`main.py`) for an LSTM, kept to its recipe: every line of a file is its words plus `<eos>`, the token stream is cut
into `batch_size` columns (`batchify`), read `bptt` tokens at a time with the state carried over, detached
(`repackage_hidden`); SGD at lr 20 by a manual update, gradients clipped to norm 0.25, the learning rate divided by 4
whenever an epoch's validation loss is no better than the best so far, the best model kept, the test loss of that
best model reported. The differences, all forced by the benchmark: training stops once a wall-clock budget is spent
(the time is checked after every batch; the model is then evaluated as at the end of an epoch), the best weights are
kept in memory rather than pickled to disk, and names are spelled out.

```python
corpus = Corpus(ptb_folder / "train.txt", ptb_folder / "valid.txt", ptb_folder / "test.txt")
model = WordLanguageModel(len(corpus.dictionary), embedding_size=200, hidden_size=200, num_layers=2, dropout=0.2)
result = train_word_language_model(model, corpus, budget_seconds=900)   # result.test_perplexity, result.history
```
"""

import copy
import math
import time
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

EOS = "<eos>"  # word_language_model's end-of-line token, appended to every line


# ---------------------------------------------------------------------------------------------------------------------
# Data: word_language_model's data.py and batchify
# ---------------------------------------------------------------------------------------------------------------------


class Dictionary:
    """Word <-> id, in order of first appearance (word_language_model's `Dictionary`)."""

    def __init__(self):
        self.word_to_id: dict[str, int] = {}
        self.id_to_word: list[str] = []

    def add_word(self, word: str) -> int:
        if word not in self.word_to_id:
            self.word_to_id[word] = len(self.id_to_word)
            self.id_to_word.append(word)
        return self.word_to_id[word]

    def __len__(self) -> int:
        return len(self.id_to_word)


def line_words(line: str) -> list[str]:
    """The tokens one line of a word-level corpus gives: its whitespace-separated words, then `<eos>`."""
    return line.split() + [EOS]


def count_tokens(path: str | PathLike) -> int:
    """Tokens of a file as word_language_model counts them: words plus one `<eos>` per line (blank lines included:
    they give a lone `<eos>`; Mikolov's PTB has none)."""
    with open(path, encoding="utf-8") as file:
        return sum(len(line_words(line)) for line in file)


class Corpus:
    """The train, validation and test token streams as 1-D int64 tensors over one dictionary built from all three
    files, in that order (word_language_model's `Corpus`; on PTB the valid and test words all occur in train).

    `vocabulary_file`: build the dictionary from this file's words first (the full training file when the three
    files are slices of the corpus, so that the vocabulary, and with it the perplexity's scale, stays the corpus's).
    """

    def __init__(
        self,
        train: str | PathLike,
        valid: str | PathLike,
        test: str | PathLike,
        vocabulary_file: str | PathLike | None = None,
    ):
        self.dictionary = Dictionary()
        if vocabulary_file is not None:
            self.tokenize(vocabulary_file)
        self.train = self.tokenize(train)
        self.valid = self.tokenize(valid)
        self.test = self.tokenize(test)

    def tokenize(self, path: str | PathLike) -> torch.Tensor:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Corpus file {str(path)!r} does not exist.")
        with open(path, encoding="utf-8") as file:
            ids = [self.dictionary.add_word(word) for line in file for word in line_words(line)]
        return torch.tensor(ids, dtype=torch.int64)


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """[N] token stream -> [N // batch_size, batch_size]: column b is the b-th contiguous slice of the stream, the
    remainder dropped. With the alphabet and batch_size 4 (word_language_model's diagram):

    ```
    a g m s
    b h n t
    c i o u        (y, z dropped)
    d j p v
    e k q w
    f l r x
    ```

    The columns are independent streams: consecutive `bptt`-row slices continue each column.
    """
    if batch_size < 1 or len(data) < batch_size:
        raise ValueError(f"`batch_size`={batch_size} needs at least that many tokens; the stream has {len(data)}.")
    num_rows = len(data) // batch_size
    return data[: num_rows * batch_size].view(batch_size, num_rows).t().contiguous()


def get_batch(source: torch.Tensor, start: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [start, start + bptt) of a batchified stream ([T, B], time-major) and the next token of each, flattened
    ([T * B]); the last slice is shorter."""
    length = min(bptt, len(source) - 1 - start)
    return source[start : start + length], source[start + 1 : start + 1 + length].reshape(-1)


# ---------------------------------------------------------------------------------------------------------------------
# Model: word_language_model's RNNModel (an LSTM; time-major, log-probabilities out, as there)
# ---------------------------------------------------------------------------------------------------------------------


class WordLanguageModel(nn.Module):
    """Embedding -> dropout -> LSTM (dropout between layers) -> dropout -> linear -> log_softmax."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.vocab_size = vocab_size
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.LSTM(embedding_size, hidden_size, num_layers, dropout=dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        # word_language_model's init_weights: uniform(-0.1, 0.1) embedding and decoder, zero decoder bias; the LSTM
        # keeps PyTorch's default
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input_ids: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]):
        # input_ids [T, B] -> log-probabilities [T * B, V], state ([L, B, H], [L, B, H])
        embedded = self.dropout(self.encoder(input_ids))
        output, hidden = self.rnn(embedded, hidden)
        logits = self.decoder(self.dropout(output)).view(-1, self.vocab_size)
        return functional.log_softmax(logits, dim=1), hidden

    def init_hidden(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = next(self.parameters())
        shape = (self.rnn.num_layers, batch_size, self.rnn.hidden_size)
        return weight.new_zeros(shape), weight.new_zeros(shape)


def repackage_hidden(hidden):
    """Detach the state from the graph of the batch that produced it: the next batch's gradients stop here."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(repackage_hidden(state) for state in hidden)


# ---------------------------------------------------------------------------------------------------------------------
# Training: word_language_model's main.py under a wall-clock budget
# ---------------------------------------------------------------------------------------------------------------------


def evaluate(
    model: WordLanguageModel, data: torch.Tensor, bptt: int, max_segments: int | None = None
) -> tuple[float, int]:
    """Mean next-token loss (nats) over a batchified stream ([T, B]), the state carried from segment to segment;
    with `max_segments`, over the first segments of every column only (quick runs). Returns (loss, tokens scored)."""
    if data.size(0) < 2:
        raise ValueError(
            f"evaluate: the batchified stream has {data.size(0)} row(s) of {data.size(1)} columns, so no next-token "
            "target: give more text or a smaller eval batch size."
        )
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for segment, start in enumerate(range(0, data.size(0) - 1, bptt)):
            if max_segments is not None and segment >= max_segments:
                break
            inputs, targets = get_batch(data, start, bptt)
            log_probabilities, hidden = model(inputs, hidden)
            total_loss += functional.nll_loss(log_probabilities, targets, reduction="sum").item()
            total_tokens += targets.numel()
    return total_loss / total_tokens, total_tokens


@dataclass
class TrainingResult:
    """What `train_word_language_model` reports; losses in nats per token, `history` one entry per evaluation."""

    best_valid_loss: float
    test_loss: float
    epochs: float  # fractional when the budget ended an epoch
    steps: int
    train_tokens: int
    train_seconds: float  # training and the evaluations inside the budget, not the final test evaluation
    valid_tokens: int
    test_tokens: int
    # one entry per validation: {"minutes" (of training before it), "epoch", "step", "valid_loss", "lr"}
    history: list[dict] = field(default_factory=list)

    @property
    def valid_perplexity(self) -> float:
        return math.exp(self.best_valid_loss)

    @property
    def test_perplexity(self) -> float:
        return math.exp(self.test_loss)


def train_word_language_model(
    model: WordLanguageModel,
    corpus: Corpus,
    budget_seconds: float,
    *,
    lr: float = 20.0,
    clip: float = 0.25,
    bptt: int = 35,
    batch_size: int = 20,
    eval_batch_size: int = 10,
    max_epochs: int = 40,
    device: torch.device | str = "cpu",
) -> TrainingResult:
    """word_language_model's training loop, stopped once `budget_seconds` of wall-clock are spent.

    The budget counts training and the end-of-epoch validations (as a Trainer's wall clock does); the time is checked
    after every batch, and an epoch cut short is evaluated like a finished one. The test loss is that of the weights
    with the best validation loss, evaluated after the budget.
    """
    device = torch.device(device)
    model.to(device)
    train_data = batchify(corpus.train, batch_size).to(device)
    valid_data = batchify(corpus.valid, eval_batch_size).to(device)
    test_data = batchify(corpus.test, eval_batch_size).to(device)
    batches_per_epoch = len(range(0, train_data.size(0) - 1, bptt))

    start_time = time.perf_counter()
    best_loss, best_state, history = None, None, []
    steps, train_tokens, epochs_done = 0, 0, 0.0
    out_of_time = False
    for epoch in range(1, max_epochs + 1):
        if out_of_time:
            break
        # main.py's train(): one pass over the columns, bptt rows at a time
        model.train()
        hidden = model.init_hidden(batch_size)
        for batch, start in enumerate(range(0, train_data.size(0) - 1, bptt)):
            inputs, targets = get_batch(train_data, start, bptt)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            log_probabilities, hidden = model(inputs, hidden)
            loss = functional.nll_loss(log_probabilities, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # against exploding gradients in RNNs
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(parameter.grad, alpha=-lr)
            steps += 1
            train_tokens += targets.numel()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if time.perf_counter() - start_time >= budget_seconds:
                out_of_time = True
                epochs_done = epoch - 1 + (batch + 1) / batches_per_epoch
                break
        else:
            epochs_done = float(epoch)
        minutes = (time.perf_counter() - start_time) / 60  # when these weights were evaluated
        valid_loss, valid_tokens = evaluate(model, valid_data, bptt)
        history.append(
            {
                "minutes": minutes,
                "epoch": epochs_done,
                "step": steps,
                "valid_loss": valid_loss,
                "lr": lr,
            }
        )
        if best_loss is None or valid_loss < best_loss:
            best_loss, best_state = valid_loss, copy.deepcopy(model.state_dict())
        else:
            lr /= 4.0  # anneal when validation stalls
        out_of_time = out_of_time or time.perf_counter() - start_time >= budget_seconds
    train_seconds = time.perf_counter() - start_time

    model.load_state_dict(best_state)
    test_loss, test_tokens = evaluate(model, test_data, bptt)
    return TrainingResult(
        best_valid_loss=best_loss,
        test_loss=test_loss,
        epochs=epochs_done,
        steps=steps,
        train_tokens=train_tokens,
        train_seconds=train_seconds,
        valid_tokens=valid_tokens,
        test_tokens=test_tokens,
        history=history,
    )


__all__ = [
    "EOS",
    "Corpus",
    "Dictionary",
    "TrainingResult",
    "WordLanguageModel",
    "batchify",
    "count_tokens",
    "evaluate",
    "get_batch",
    "line_words",
    "repackage_hidden",
    "train_word_language_model",
]
