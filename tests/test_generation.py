"""generate() on RNNForCausalLM: the recurrent cache gives exactly the tokens of full recomputation.

Every model here has random biases (as after training) and a wide embedding/head initialisation, so that
the next token depends on the whole prompt: a fresh model's outputs are nearly constant and would hide bugs.
"""

import queue
import threading

import pytest
import torch
from transformers import TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

from conftest import EOS, PAD, randomize_biases, random_ids, tiny_config, tiny_tokenizer
from hf_rnn import RNNCache, RNNForCausalLM


def make_lm(cell_type: str, seed: int = 0, eos_bias: float = 0.0, **overrides) -> RNNForCausalLM:
    """A tiny LM in eval mode; `eos_bias` is added to the EOS logit so that some generations stop early."""
    torch.manual_seed(seed)
    model = RNNForCausalLM(tiny_config(cell_type, initializer_range=1.0, **overrides))
    randomize_biases(model, seed=seed)
    with torch.no_grad():
        model.lm_head.bias[EOS] += eos_bias
    return model.eval()


def until_eos(tokens) -> list[int]:
    """The tokens up to and including the first EOS (finished rows are filled with pad or EOS afterwards)."""
    tokens = tokens.tolist() if torch.is_tensor(tokens) else list(tokens)
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens


def left_pad(prompts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D prompts of different lengths -> left-padded [B, T] ids and the matching attention mask."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = prompt
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def assert_greedy_is_argmax(model, sequences: torch.Tensor, prompt_len: int):
    """Each generated token (up to EOS) is the argmax of a single full forward over the generated sequence."""
    with torch.no_grad():
        logits = model(sequences, use_cache=False).logits
    for row in range(sequences.shape[0]):
        new_tokens = until_eos(sequences[row, prompt_len:])
        expected = logits[row, prompt_len - 1 : prompt_len - 1 + len(new_tokens)].argmax(-1).tolist()
        assert new_tokens == expected, f"row {row}"


# ---------------------------------------------------------------------------------------------------------------------
# Cached decoding equals full recomputation
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("repetition_penalty", [1.0, 3.0], ids=["plain", "repetition-penalty"])
def test_greedy_cache_matches_recomputation(cell_type, repetition_penalty):
    """Greedy search with the recurrent cache gives exactly the tokens of use_cache=False (and of a full argmax).

    A random model's greedy output soon loops; the repetition penalty pushes the decode through many more states.
    """
    model = make_lm(cell_type)
    prompts = random_ids(3, 6, seed=1)
    kwargs = dict(max_new_tokens=20, do_sample=False, repetition_penalty=repetition_penalty)
    cached = model.generate(prompts, **kwargs)
    recomputed = model.generate(prompts, **kwargs, use_cache=False)
    assert cached.shape == (3, 26)
    assert torch.equal(cached, recomputed)
    if repetition_penalty == 1.0:
        assert_greedy_is_argmax(model, cached, prompt_len=6)
    else:
        assert len(set(cached[:, 6:].flatten().tolist())) > 8, "degenerate decode: the test would prove little"


@pytest.mark.parametrize("eos_bias", [0.0, 3.0], ids=["no-eos", "early-eos"])
def test_beam_search_cache_matches_recomputation(cell_type, eos_bias):
    """Beam search (3 beams, several prompts) with the cache reorders the state correctly: same tokens as without."""
    model = make_lm(cell_type, eos_bias=eos_bias)
    prompts = random_ids(6, 5, seed=1)
    cached = model.generate(prompts, max_new_tokens=15, num_beams=3, do_sample=False)
    recomputed = model.generate(prompts, max_new_tokens=15, num_beams=3, do_sample=False, use_cache=False)
    assert torch.equal(cached[:, :5], prompts)
    for row in range(prompts.shape[0]):
        assert until_eos(cached[row, 5:]) == until_eos(recomputed[row, 5:]), f"row {row}"


def test_sampling_is_reproducible_and_matches_recomputation(cell_type):
    """Sampling (temperature, top_k, top_p) under a fixed seed repeats itself and matches use_cache=False."""
    model = make_lm(cell_type)
    prompts = random_ids(2, 4, seed=2)
    kwargs = dict(do_sample=True, temperature=0.8, top_k=12, top_p=0.95, max_new_tokens=20)

    def sample(seed, **extra):
        torch.manual_seed(seed)
        return model.generate(prompts, **kwargs, **extra)

    first = sample(123)
    assert torch.equal(first, sample(123))
    assert torch.equal(first, sample(123, use_cache=False))
    others = [sample(seed) for seed in (1, 2, 3)]
    assert any(not torch.equal(first, other) for other in others), "sampling ignores the seed"


def test_sampling_num_return_sequences(cell_type):
    """num_return_sequences=3 with sampling: 3 rows per prompt, each continuing its prompt with top-k tokens only."""
    model = make_lm(cell_type)
    prompts = random_ids(2, 4, seed=3)
    top_k = 5
    torch.manual_seed(0)
    out = model.generate(prompts, do_sample=True, top_k=top_k, num_return_sequences=3, max_new_tokens=12)
    assert out.shape == (6, 16)
    for row in range(6):
        assert torch.equal(out[row, :4], prompts[row // 3]), f"row {row} does not start with its prompt"
    with torch.no_grad():
        logits = model(out, use_cache=False).logits
    allowed = logits[:, 3:-1].topk(top_k, dim=-1).indices  # [6, 12, k]: the top-k after each prefix
    for row in range(6):
        new_tokens = until_eos(out[row, 4:])
        for step, token in enumerate(new_tokens):
            assert token in allowed[row, step].tolist(), f"row {row} step {step}: {token} outside the top-{top_k}"
    assert len({tuple(r) for r in out.tolist()}) > 2, "the returned samples are (nearly) all identical"


@pytest.mark.parametrize("eos_bias", [0.0, 3.0], ids=["no-eos", "early-eos"])
def test_beam_search_num_return_sequences(cell_type, eos_bias):
    """num_return_sequences=3 of 3 beams: best-first hypotheses whose scores are their log-probabilities."""
    model = make_lm(cell_type, eos_bias=eos_bias)
    prompts = random_ids(2, 5, seed=4)
    out = model.generate(
        prompts, num_beams=3, num_return_sequences=3, max_new_tokens=10, do_sample=False,
        return_dict_in_generate=True, output_scores=True,
    )  # fmt: skip
    sequences, scores = out.sequences, out.sequences_scores
    assert sequences.shape[0] == 6 and scores.shape == (6,)
    best = model.generate(prompts, num_beams=3, max_new_tokens=10, do_sample=False)
    with torch.no_grad():
        log_probs = model(sequences, use_cache=False).logits.log_softmax(-1)
    for row in range(6):
        assert torch.equal(sequences[row, :5], prompts[row // 3])
        new_tokens = until_eos(sequences[row, 5:])
        total = sum(log_probs[row, 4 + step, token].item() for step, token in enumerate(new_tokens))
        # length_penalty 1.0: the sum of log-probabilities over the number of generated tokens
        assert scores[row].item() == pytest.approx(total / len(new_tokens), abs=1e-4), f"row {row}"
    for group in range(2):
        group_scores = scores[3 * group : 3 * group + 3].tolist()
        assert group_scores == sorted(group_scores, reverse=True)
        assert until_eos(sequences[3 * group, 5:]) == until_eos(best[group, 5:])


# ---------------------------------------------------------------------------------------------------------------------
# Streamers
# ---------------------------------------------------------------------------------------------------------------------


class RecordingStreamer(BaseStreamer):
    """Keeps every value generate() pushes, and counts the calls to end()."""

    def __init__(self):
        self.values, self.ended = [], 0

    def put(self, value):
        self.values.append(value.detach().clone())

    def end(self):
        self.ended += 1


class TokenIteratorStreamer(BaseStreamer):
    """TextIteratorStreamer without a tokenizer: iterate over new token ids while generate() runs in a thread."""

    def __init__(self):
        self.queue, self.prompt_seen = queue.Queue(), False

    def put(self, value):
        if not self.prompt_seen:  # the first push is the prompt
            self.prompt_seen = True
            return
        for token in value.flatten().tolist():
            self.queue.put(token)

    def end(self):
        self.queue.put(None)

    def __iter__(self):
        while (token := self.queue.get(timeout=60)) is not None:
            yield token


def test_custom_streamer_gets_prompt_then_one_token_at_a_time(cell_type):
    """A BaseStreamer subclass receives the prompt first, then each new token alone, then one end()."""
    model = make_lm(cell_type)
    prompt = random_ids(1, 5, seed=5)
    streamer = RecordingStreamer()
    out = model.generate(prompt, max_new_tokens=10, do_sample=False, streamer=streamer)
    assert streamer.ended == 1
    assert torch.equal(streamer.values[0].view(1, -1), prompt)
    new_values = streamer.values[1:]
    assert len(new_values) == out.shape[1] - 5 and all(v.numel() == 1 for v in new_values)
    assert [int(v) for v in new_values] == out[0, 5:].tolist()


def test_iterator_streamers(cell_type):
    """Iterating a streamer while generate() runs in a thread yields exactly the generated tokens (ids and text)."""
    model = make_lm(cell_type)
    prompt = random_ids(1, 5, seed=6)
    expected = model.generate(prompt, max_new_tokens=12, do_sample=False)

    token_streamer = TokenIteratorStreamer()
    thread = threading.Thread(
        target=model.generate, args=(prompt,), kwargs=dict(max_new_tokens=12, do_sample=False, streamer=token_streamer)
    )
    thread.start()
    streamed = list(token_streamer)
    thread.join()
    assert streamed == expected[0, 5:].tolist()

    tokenizer = tiny_tokenizer()
    text_streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=60)
    thread = threading.Thread(
        target=model.generate, args=(prompt,), kwargs=dict(max_new_tokens=12, do_sample=False, streamer=text_streamer)
    )
    thread.start()
    text = "".join(text_streamer)
    thread.join()
    assert text.strip() == tokenizer.decode(expected[0, 5:], skip_special_tokens=True).strip()
    assert text.strip(), "nothing was streamed"


# ---------------------------------------------------------------------------------------------------------------------
# Cost per token and state size
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_beams", [1, 3])
def test_decode_steps_feed_one_token(cell_type, num_beams):
    """The first forward reads the whole prompt; every later forward reads ONE token and gets the cache back."""
    model = make_lm(cell_type)
    prompts = random_ids(2, 7, seed=7)
    calls = []

    def record(module, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append((tuple(input_ids.shape), kwargs.get("cache")))

    handle = model.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        out = model.generate(prompts, max_new_tokens=15, num_beams=num_beams, do_sample=False)
    finally:
        handle.remove()
    rows = 2 * num_beams
    new_tokens = out.shape[1] - 7
    assert len(calls) == new_tokens >= 2
    assert calls[0][0] == (rows, 7)
    assert [shape for shape, _ in calls[1:]] == [(rows, 1)] * (new_tokens - 1)
    assert all(isinstance(cache, RNNCache) for _, cache in calls[1:])


def test_state_size_is_constant(cell_type):
    """The cache after 5 and after 50 new tokens holds tensors of the same shapes: [B, 1, H] per state and layer."""
    model = make_lm(cell_type)
    prompts = random_ids(2, 4, seed=8)

    def final_cache(max_new_tokens):
        out = model.generate(
            prompts, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
            return_dict_in_generate=True,
        )  # fmt: skip
        assert out.sequences.shape[1] == 4 + max_new_tokens
        return out.sequences, out.cache

    def shapes(cache):
        return [[tuple(s.shape) for s in cache.get_layer_state(i)] for i in range(len(cache.layers))]

    _, short = final_cache(5)
    sequences, long = final_cache(50)
    states_per_layer = 2 if cell_type == "lstm" else 1
    assert shapes(short) == shapes(long) == [[(2, 1, 8)] * states_per_layer] * 2
    # the returned state is the real one: feeding the last token continues the full sequence exactly
    with torch.no_grad():
        step = model(sequences[:, -1:], cache=long).logits[:, -1]
        full = model(sequences, use_cache=False).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Padding and continuation
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_beams", [1, 3])
def test_left_padding_is_exact(cell_type, num_beams):
    """A left-padded batch with an attention mask gives each row the tokens of generating that prompt alone."""
    model = make_lm(cell_type)
    generator = torch.Generator().manual_seed(9)
    prompts = [torch.randint(3, 37, (n,), generator=generator) for n in (3, 7, 5, 1)]
    ids, mask = left_pad(prompts)
    kwargs = dict(max_new_tokens=12, num_beams=num_beams, do_sample=False)
    batched = model.generate(ids, attention_mask=mask, **kwargs)
    width = ids.shape[1]
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], **kwargs)
        assert until_eos(batched[row, width:]) == until_eos(alone[0, len(prompt) :]), f"row {row}"
    # the pads do move the state when unmasked, so the comparison above does test the mask
    unmasked = model.generate(ids, attention_mask=torch.ones_like(mask), **kwargs)
    assert not torch.equal(unmasked[:, width:], batched[:, width:])


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("split", [7, 5, 1])
def test_generate_continues_from_user_cache(cell_type, split, num_beams):
    """Forward a prefix with use_cache=True, then generate from the rest and cache=...: same tokens as the full prompt.

    generate() expands input tensors for beam search but not a user-supplied cache: the caller repeats each row's
    state once per beam (`cache.batch_repeat_interleave`), as for any transformers cache.
    """
    model = make_lm(cell_type)
    prompts = random_ids(2, 8, seed=10)
    kwargs = dict(max_new_tokens=10, num_beams=num_beams, do_sample=False)
    reference = model.generate(prompts, **kwargs)
    with torch.no_grad():
        cache = model(prompts[:, :split], use_cache=True).cache
    if num_beams > 1:
        cache.batch_repeat_interleave(num_beams)
    continued = model.generate(prompts[:, split:], cache=cache, **kwargs)
    assert torch.equal(continued[:, : 8 - split], prompts[:, split:])
    for row in range(2):
        assert until_eos(continued[row, 8 - split :]) == until_eos(reference[row, 8:]), f"row {row}"


def test_assisted_decoding_is_refused(cell_type):
    """A recurrent state cannot roll back, so assisted decoding (assistant model or prompt lookup) raises a clear
    ValueError rather than generating from a corrupted state."""
    model = make_lm(cell_type)
    assistant = make_lm(cell_type, seed=1)
    prompts = random_ids(1, 6, seed=11)
    with pytest.raises(ValueError, match="stateful"):
        model.generate(prompts, assistant_model=assistant, max_new_tokens=5, do_sample=False)
    with pytest.raises(ValueError, match="stateful"):
        model.generate(prompts, prompt_lookup_num_tokens=2, max_new_tokens=5, do_sample=False)


# ---------------------------------------------------------------------------------------------------------------------
# hf_rnn's own prepare_inputs_for_generation
# ---------------------------------------------------------------------------------------------------------------------


def test_generate_from_inputs_embeds_equals_generate_from_ids(cell_type):
    """The prompt's embeddings feed the first step only; afterwards the generated ids do, as with a prompt of ids."""
    model = make_lm(cell_type)
    ids, mask = left_pad([random_ids(1, 5, seed=7)[0], random_ids(1, 3, seed=8)[0]])
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    from_ids = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    from_embeds = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(from_embeds, from_ids[:, ids.shape[1] :])  # generate() returns only new tokens for embeds


@pytest.mark.parametrize("step", ["prefill", "decode"])
def test_prepare_inputs_for_generation_matches_generation_mixin(cell_type, step):
    """The same tensors for every argument forward() reads as transformers' generic version gives."""
    from transformers import GenerationMixin

    model = make_lm(cell_type)
    ids = random_ids(2, 6, seed=3)
    kwargs = {"attention_mask": torch.ones(2, 6, dtype=torch.long), "use_cache": True, "logits_to_keep": 1}
    if step == "decode":
        with torch.no_grad():
            kwargs["cache"] = model(ids[:, :5], use_cache=True).cache
        kwargs["next_sequence_length"] = 1
    ours = model.prepare_inputs_for_generation(ids, **kwargs)
    generic = GenerationMixin.prepare_inputs_for_generation(model, ids, **kwargs)
    assert set(ours) == set(generic)
    for key in generic:
        if isinstance(generic[key], torch.Tensor):
            assert torch.equal(ours[key], generic[key]), key
        else:
            assert ours[key] is generic[key] or ours[key] == generic[key], key


def test_prepare_inputs_for_generation_never_passes_labels():
    model = make_lm("lstm")
    inputs = model.prepare_inputs_for_generation(random_ids(1, 4), labels=random_ids(1, 4), use_cache=True)
    assert "labels" not in inputs and inputs["use_cache"] is True
