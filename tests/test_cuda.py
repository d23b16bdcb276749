"""GPU checks: the CUDA (cuDNN) paths agree with the CPU ones. Skipped where no GPU is present (as on CI); run on
a GPU machine with `pytest tests/test_cuda.py`."""

import pytest
import torch
from torch.nn import functional as F

from hf_rnn import RNNForCausalLM, RNNForSequenceClassification, RNNModel

from conftest import random_ids, randomize_biases, tiny_config


pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 would make GPU matmuls differ from the CPU's by ~1e-3."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def test_padded_outputs_match_cpu(cell_type, bidirectional):
    config = tiny_config(cell_type, bidirectional, num_labels=3, layer_hidden_sizes=[12, 8])
    model = randomize_biases(RNNForSequenceClassification(config)).eval()
    ids = random_ids(4, 9)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    mask[1, 6:] = 0  # right padding
    mask[2, 4] = 0  # a hole
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, output_hidden_states=True)
        got = model.to(CUDA)(ids.to(CUDA), attention_mask=mask.to(CUDA), output_hidden_states=True)
    torch.testing.assert_close(got.logits.cpu(), expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.hidden_states[-1].cpu(), expected.hidden_states[-1], rtol=1e-4, atol=1e-5)


def test_greedy_generation_matches_cpu(cell_type):
    model = randomize_biases(RNNForCausalLM(tiny_config(cell_type))).eval()
    prompts = random_ids(3, 5)
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0
    kwargs = dict(max_new_tokens=12, min_new_tokens=12, do_sample=False)
    expected = model.generate(prompts, attention_mask=mask, **kwargs)
    got = model.to(CUDA).generate(prompts.to(CUDA), attention_mask=mask.to(CUDA), **kwargs)
    assert torch.equal(got.cpu(), expected)


def test_single_step_path_matches_sequence_kernel(cell_type):
    model = randomize_biases(RNNModel(tiny_config(cell_type))).to(CUDA).eval()
    ids = random_ids(2, 6).to(CUDA)
    with torch.no_grad():
        full = model(ids).last_hidden_state
        cache = model(ids[:, :5], use_cache=True).cache
        step = model(ids[:, 5:], cache=cache).last_hidden_state  # one token: the cell-kernel path
    torch.testing.assert_close(step, full[:, 5:], rtol=1e-4, atol=1e-5)


def test_weight_drop_on_cudnn(cell_type):
    """cuDNN runs the dropped recurrent weights (swapped into the module's flat weights for one call) and the
    gradient reaches the plain parameter."""
    model = randomize_biases(RNNModel(tiny_config(cell_type, num_hidden_layers=1, weight_drop=0.5))).to(CUDA).train()
    layer = model.layers[0]
    inputs = torch.randn(3, 7, 8, device=CUDA)
    torch.manual_seed(5)
    outputs, _ = layer(inputs, None)
    torch.manual_seed(5)
    dropped = F.dropout(layer.rnn.weight_hh_l0, 0.5, training=True)
    reference = layer.rnn.__class__(**_kwargs(layer.rnn)).to(CUDA)
    reference.load_state_dict(layer.rnn.state_dict())
    with torch.no_grad():
        reference.weight_hh_l0.copy_(dropped)
    torch.testing.assert_close(outputs, reference(inputs)[0], rtol=1e-4, atol=1e-5)
    outputs.sum().backward()
    assert layer.rnn.weight_hh_l0.grad is not None and layer.rnn.weight_hh_l0.grad.abs().sum() > 0


def test_bf16_autocast_training_step_and_generation():
    model = RNNForCausalLM(tiny_config("lstm", weight_drop=0.3, locked_dropout=True, hidden_dropout=0.2)).to(CUDA)
    ids = random_ids(4, 16).to(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model.train()(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        tokens = model.eval().generate(ids[:1, :4], max_new_tokens=8, do_sample=False)
    assert tokens.shape == (1, 12)


def _kwargs(module):
    kwargs = dict(input_size=module.input_size, hidden_size=module.hidden_size, batch_first=True)
    if isinstance(module, torch.nn.RNN):
        kwargs["nonlinearity"] = module.nonlinearity
    return kwargs
