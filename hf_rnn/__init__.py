"""hf_rnn: classic recurrent networks (RNN, LSTM, GRU) as first-class Hugging Face transformers models.

Importing the package registers the config and every head with transformers' Auto classes, and marks them
for remote code: `save_pretrained` then writes `auto_map` and copies the modeling source next to the weights.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_rnn import RNNConfig
from .modeling_rnn import (
    RNNCache,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
    RNNPreTrainedModel,
)
from .validation import check_tokenizer_fits


__version__ = "0.1.0"

AutoConfig.register(RNNConfig.model_type, RNNConfig, exist_ok=True)
RNNConfig.register_for_auto_class()
for _auto_class, _model_class in (
    (AutoModel, RNNModel),
    (AutoModelForCausalLM, RNNForCausalLM),
    (AutoModelForSequenceClassification, RNNForSequenceClassification),
    (AutoModelForTokenClassification, RNNForTokenClassification),
):
    _auto_class.register(RNNConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)

__all__ = [
    "RNNCache",
    "RNNConfig",
    "RNNForCausalLM",
    "RNNForSequenceClassification",
    "RNNForTokenClassification",
    "RNNModel",
    "RNNPreTrainedModel",
    "check_tokenizer_fits",
]
