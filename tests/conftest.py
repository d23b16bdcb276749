"""Shared tiny fixtures: every test runs on configs small enough for 2 CPU cores."""

import os
import textwrap

import pytest
import torch

import hf_rnn  # noqa: F401  (registers the Auto classes)
from hf_rnn import RNNConfig


CELL_TYPES = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
VOCAB_SIZE = 37
PAD, EOS, BOS = 0, 1, 2

torch.set_num_threads(1)  # tests run two at a time under xdist on 2 cores


def tiny_config(cell_type: str = "lstm", bidirectional: bool = False, **overrides) -> RNNConfig:
    """A 2-layer model with 8-wide states: fast, yet stacked, so layer-to-layer paths are exercised."""
    fields = dict(
        vocab_size=VOCAB_SIZE,
        embedding_size=8,
        hidden_size=8,
        num_hidden_layers=2,
        cell_type=cell_type,
        bidirectional=bidirectional,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
    )
    fields.update(overrides)
    return RNNConfig(**fields)


def randomize_biases(model: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> torch.nn.Module:
    """Give every bias a non-zero value, as after training: zero biases hide padding bugs in LSTM/GRU."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "bias" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return model


def random_ids(batch_size: int, seq_len: int, seed: int = 0, low: int = 3) -> torch.Tensor:
    """Token ids that avoid the special tokens (pad 0, eos 1, bos 2)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, VOCAB_SIZE, (batch_size, seq_len), generator=generator)


@pytest.fixture(params=CELL_TYPES)
def cell_type(request):
    return request.param


@pytest.fixture(params=[False, True], ids=["unidirectional", "bidirectional"])
def bidirectional(request):
    return request.param


@pytest.fixture
def hf_env(tmp_path):
    """Environment for a subprocess that must not touch the real Hub or the user's cache."""
    env = dict(os.environ)
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


# Words of `tiny_tokenizer`, one per id of the tiny vocabulary: the special tokens first, at the ids above.
TINY_WORDS = ["[PAD]", "[EOS]", "[BOS]", "[UNK]"] + (
    "the a cat dog sat ran on under mat rug big small red blue green happy sad and or but it is was very quite "
    "house tree bird fish sun moon star sky"
).split()


def tiny_tokenizer():
    """A word-level fast tokenizer over the VOCAB_SIZE words of TINY_WORDS (pad 0, eos 1, bos 2, unk 3).

    Built offline with the `tokenizers` library: whitespace splitting, one id per word.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    assert len(TINY_WORDS) == VOCAB_SIZE
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(TINY_WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]", bos_token="[BOS]", unk_token="[UNK]"
    )


# Python source that a subprocess runs first to make `import hf_rnn` fail (as on a machine with only a pushed
# checkpoint): a meta-path finder ahead of the editable-install finder. It sets HF_RNN_IMPORT_ERROR, which the
# tests check, so that they prove hf_rnn really was hidden.
HIDE_HF_RNN = textwrap.dedent(
    '''
    import importlib.abc
    import sys


    class HideHfRnn(importlib.abc.MetaPathFinder):
        """hf_rnn is not importable: only the source files pushed with the model are."""

        def find_spec(self, name, path=None, target=None):
            if name == "hf_rnn" or name.startswith("hf_rnn."):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None


    sys.meta_path.insert(0, HideHfRnn())
    try:
        import hf_rnn  # noqa: F401
        HF_RNN_IMPORT_ERROR = None
    except ImportError as error:
        HF_RNN_IMPORT_ERROR = str(error)
    '''
)
