"""Checks across files that transformers does not make when loading them one by one."""

from .configuration_rnn import RNNConfig


def check_tokenizer_fits(model_or_config, tokenizer, source: str | None = None) -> None:
    """Raise ValueError when `tokenizer` can produce ids the model has no embedding for (`source`: where the model
    comes from, named in the message).

    `AutoTokenizer.from_pretrained` and `AutoModel*.from_pretrained` load a folder whose tokenizer has more tokens
    than `config.vocab_size` without a word; the first text with a high id then fails deep inside `forward`.
    Call this right after loading both.
    """
    config = model_or_config if isinstance(model_or_config, RNNConfig) else getattr(model_or_config, "config", None)
    if not isinstance(config, RNNConfig):
        raise TypeError(f"`model_or_config` must be an hf_rnn model or RNNConfig, got {type(model_or_config).__name__}.")
    tokenizer_size = len(tokenizer)
    if tokenizer_size > config.vocab_size:
        where = f" (from {source!r})" if source is not None else ""
        raise ValueError(
            f"The tokenizer has {tokenizer_size} tokens but the model's `vocab_size` is {config.vocab_size}{where}: ids "
            f"{config.vocab_size}..{tokenizer_size - 1} have no embedding. Use the tokenizer the model was trained "
            "with, or build the model with `vocab_size >= len(tokenizer)`."
        )


__all__ = ["check_tokenizer_fits"]
