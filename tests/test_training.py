"""Training with transformers' Trainer: gradient accumulation, a short run, padded evaluation.

Every Trainer runs on CPU, reports nowhere and writes only under tmp_path.
"""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

from conftest import PAD, VOCAB_SIZE, randomize_biases, random_ids, tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification


def training_args(tmp_path, **overrides) -> TrainingArguments:
    """CPU, no reporting, no checkpoints, data in dataset order (no shuffling)."""
    fields = dict(
        output_dir=str(tmp_path / "trainer"),
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        train_sampling_strategy="sequential",
        seed=0,
    )
    fields.update(overrides)
    return TrainingArguments(**fields)


# ---------------------------------------------------------------------------------------------------------------------
# Gradient accumulation equals one large batch
# ---------------------------------------------------------------------------------------------------------------------

SEQ_LEN = 8
# (real tokens, label tokens) per example: the two micro-batches of 2 hold very different numbers of label tokens
LAYOUT = [(8, 8), (7, 6), (3, 2), (5, 1)]


def accumulation_dataset(task: str) -> list[dict]:
    """Four right-padded examples of SEQ_LEN tokens, with labels for `task`."""
    ids = random_ids(len(LAYOUT), SEQ_LEN, seed=20)
    generator = torch.Generator().manual_seed(21)
    examples = []
    for i, (real, labelled) in enumerate(LAYOUT):
        mask = torch.tensor([1] * real + [0] * (SEQ_LEN - real))
        example = dict(input_ids=ids[i].masked_fill(mask == 0, PAD), attention_mask=mask)
        if task in ("causal_lm", "token_classification"):
            labels = ids[i].clone() if task == "causal_lm" else torch.randint(0, 3, (SEQ_LEN,), generator=generator)
            labels[labelled:] = -100  # only the first `labelled` positions count
            example["labels"] = labels
        elif task == "single_label_classification":
            example["labels"] = torch.tensor(i % 3)
        elif task == "regression":
            example["labels"] = torch.tensor(float(i) - 1.5)
        elif task == "multi_label_classification":
            example["labels"] = torch.randint(0, 2, (3,), generator=generator).float()
        examples.append(example)
    return examples


def accumulation_model(task: str, cell_type: str):
    """The same tiny model (same seed) for every run of a comparison."""
    torch.manual_seed(0)
    if task == "causal_lm":
        model = RNNForCausalLM(tiny_config(cell_type))
    elif task == "token_classification":
        model = RNNForTokenClassification(tiny_config(cell_type, num_labels=3))
    else:
        num_labels = 1 if task == "regression" else 3
        model = RNNForSequenceClassification(tiny_config(cell_type, num_labels=num_labels, problem_type=task))
    return randomize_biases(model)


def sgd_update_with_trainer(task, cell_type, tmp_path, batch_size: int, accumulation: int) -> dict:
    """Parameter change after ONE optimizer step of SGD (lr 1, no momentum, no clipping): minus the gradient."""
    model = accumulation_model(task, cell_type)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.0)
    scheduler = LambdaLR(optimizer, lambda step: 1.0)
    args = training_args(
        tmp_path / f"b{batch_size}a{accumulation}",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        max_grad_norm=0.0,  # clipping would hide a gradient N times too large
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=accumulation_dataset(task), data_collator=default_data_collator,
        optimizers=(optimizer, scheduler),
    )  # fmt: skip
    trainer.train()
    return {name: p.detach() - before[name] for name, p in model.named_parameters()}


def reference_update(task, cell_type) -> dict:
    """Minus the gradient of the loss of the four examples as one batch, outside Trainer."""
    model = accumulation_model(task, cell_type).train()
    batch = default_data_collator(accumulation_dataset(task))
    model(**batch).loss.backward()
    return {name: -p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize(
    "task",
    ["causal_lm", "token_classification", "single_label_classification", "regression", "multi_label_classification"],
)
def test_gradient_accumulation_equals_one_large_batch(cell_type, task, tmp_path):
    """(batch 2, accumulation 2) updates the parameters exactly as (batch 4, accumulation 1) and as one backward
    pass over the four examples, although the micro-batches hold different numbers of label tokens."""
    if task in ("causal_lm", "token_classification"):
        first = 1 if task == "causal_lm" else 0  # the causal loss shifts: position 0 is never a target
        counts = [int(example["labels"][first:].ne(-100).sum()) for example in accumulation_dataset(task)]
        assert counts[0] + counts[1] != counts[2] + counts[3], "the micro-batches must hold different label counts"
    reference = reference_update(task, cell_type)
    large = sgd_update_with_trainer(task, cell_type, tmp_path, batch_size=4, accumulation=1)
    accumulated = sgd_update_with_trainer(task, cell_type, tmp_path, batch_size=2, accumulation=2)

    assert any(update.abs().max() > 1e-3 for update in reference.values()), "no gradient: the test proves nothing"
    for name in reference:
        torch.testing.assert_close(large[name], reference[name], atol=1e-6, rtol=1e-5, msg=f"batch 4: {name}")
        torch.testing.assert_close(accumulated[name], reference[name], atol=1e-6, rtol=1e-5, msg=f"accum 2: {name}")


# ---------------------------------------------------------------------------------------------------------------------
# A short training run
# ---------------------------------------------------------------------------------------------------------------------


def cyclic_lm_dataset(num_examples: int = 32, seq_len: int = 12) -> list[dict]:
    """Sequences that follow a fixed random successor table: learnable, so the loss must fall."""
    generator = torch.Generator().manual_seed(30)
    successor = torch.randperm(VOCAB_SIZE - 3, generator=generator) + 3  # token t -> successor[t - 3]
    examples = []
    for i in range(num_examples):
        token = 3 + i % (VOCAB_SIZE - 3)
        ids = [token]
        for _ in range(seq_len - 1):
            ids.append(int(successor[ids[-1] - 3]))
        ids = torch.tensor(ids)
        examples.append(dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids.clone()))
    return examples


def lm_loss(model, dataset) -> float:
    """Mean next-token loss of the model over the whole dataset, as one batch, in eval mode."""
    batch = default_data_collator(dataset)
    model.eval()
    with torch.no_grad():
        return model(**batch).loss.item()


def test_short_training_run_lowers_loss_and_saves(cell_type, tmp_path):
    """Trainer lowers the loss on a learnable LM task; save_model + from_pretrained reproduces the trained outputs."""
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_config(cell_type, hidden_size=16, embedding_size=16))
    dataset = cyclic_lm_dataset()
    args = training_args(
        tmp_path, per_device_train_batch_size=8, max_steps=60, learning_rate=3e-2, lr_scheduler_type="constant"
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator)
    loss_before = lm_loss(model, dataset)
    trainer.train()
    loss_after = lm_loss(model, dataset)
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)

    save_dir = tmp_path / "saved"
    trainer.save_model(str(save_dir))
    assert (save_dir / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(save_dir).eval()
    assert type(loaded) is RNNForCausalLM
    model.eval()
    ids = torch.stack([example["input_ids"] for example in dataset[:4]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    prompt = ids[:, :3]
    generated = loaded.generate(prompt, max_new_tokens=9, do_sample=False)
    assert torch.equal(generated, model.generate(prompt, max_new_tokens=9, do_sample=False))


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation with padded batches
# ---------------------------------------------------------------------------------------------------------------------

EVAL_LENGTHS = [2, 9, 4, 7, 3, 6, 5]  # 7 examples: batches of 3, 3 and 1


def eval_examples(task: str) -> list[dict]:
    """Examples of different lengths, unpadded (the collator pads them on the right)."""
    generator = torch.Generator().manual_seed(40)
    examples = []
    for i, length in enumerate(EVAL_LENGTHS):
        ids = torch.randint(3, VOCAB_SIZE, (length,), generator=generator).tolist()
        if task == "causal_lm":
            labels = list(ids)
        elif task == "token_classification":
            labels = torch.randint(0, 3, (length,), generator=generator).tolist()
        else:
            labels = i % 3
        examples.append(dict(input_ids=ids, attention_mask=[1] * length, labels=labels))
    return examples


def eval_model(task: str, cell_type: str, bidirectional: bool):
    torch.manual_seed(0)
    if task == "causal_lm":
        model = RNNForCausalLM(tiny_config(cell_type))
    elif task == "token_classification":
        model = RNNForTokenClassification(tiny_config(cell_type, bidirectional=bidirectional, num_labels=3))
    else:
        model = RNNForSequenceClassification(tiny_config(cell_type, bidirectional=bidirectional, num_labels=3))
    return randomize_biases(model).eval()


@pytest.mark.parametrize(
    "task, bidirectional",
    [
        ("causal_lm", False),
        ("token_classification", False),
        ("token_classification", True),
        ("sequence_classification", False),
        ("sequence_classification", True),
    ],
)
def test_padded_evaluation_equals_unpadded(cell_type, task, bidirectional, tmp_path):
    """Trainer's eval loss over right-padded batches equals the loss of each example evaluated alone, weighted as
    Trainer does: per batch, a mean over its label items; over batches, a mean weighted by batch size."""
    model = eval_model(task, cell_type, bidirectional)
    examples = eval_examples(task)
    tokenizer = tiny_tokenizer()
    assert tokenizer.padding_side == "right"
    if task == "sequence_classification":
        collator = DataCollatorWithPadding(tokenizer)
    else:
        collator = DataCollatorForTokenClassification(tokenizer)  # pads labels with -100
    batch_size = 3
    trainer = Trainer(
        model=model, args=training_args(tmp_path, per_device_eval_batch_size=batch_size), eval_dataset=examples,
        data_collator=collator,
    )  # fmt: skip
    metrics = trainer.evaluate()
    assert "eval_loss" in metrics, f"Trainer computed no eval loss (its label_names: {trainer.label_names})"
    padded_loss = metrics["eval_loss"]

    # each example alone, no padding: its mean loss and its number of label items
    losses, items = [], []
    with torch.no_grad():
        for example in examples:
            batch = {key: torch.tensor([value]) for key, value in example.items()}
            losses.append(model(**batch).loss.item())
            length = len(example["input_ids"])
            items.append({"causal_lm": length - 1, "token_classification": length}.get(task, 1))
    weighted = []
    for start in range(0, len(examples), batch_size):
        chunk = range(start, min(start + batch_size, len(examples)))
        batch_loss = sum(losses[i] * items[i] for i in chunk) / sum(items[i] for i in chunk)
        weighted.append((batch_loss, len(chunk)))
    expected = sum(loss * n for loss, n in weighted) / len(examples)
    assert padded_loss == pytest.approx(expected, rel=1e-5, abs=1e-6)

    # the mask matters here (it would not for a unidirectional per-token head, whose pads come last): the same
    # batches without their attention mask give another loss
    if task == "sequence_classification" or bidirectional:
        unmasked = Trainer(
            model=model, args=training_args(tmp_path, per_device_eval_batch_size=batch_size), eval_dataset=examples,
            data_collator=lambda features: {k: v for k, v in collator(features).items() if k != "attention_mask"},
        )  # fmt: skip
        assert unmasked.evaluate()["eval_loss"] != pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# The training commands keep freed memory in the process (glibc)
# ---------------------------------------------------------------------------------------------------------------------

# Allocates, touches and frees a 48 MiB block `rounds` times in a fresh process (optionally after tune_glibc_malloc)
# and prints whether tuning applied and the page faults of the rounds after the first. 48 MiB is above glibc's
# largest dynamic mmap threshold (32 MiB), so untuned every round maps, faults in and unmaps fresh pages.
_MALLOC_PROBE = """
import ctypes, json, resource, sys
from hf_rnn.command_utils import tune_glibc_malloc
tuned = tune_glibc_malloc() if sys.argv[1] == "tune" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 48 * 2**20, []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # touch every page
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"tuned": tuned, "faults_after_first": sum(faults[1:])}))
"""

REPOSITORY = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)


def malloc_probe(env: dict, tune: bool) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MALLOC_PROBE, "tune" if tune else "plain"],
        capture_output=True, text=True, env=env, cwd=REPOSITORY, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def clean_allocator_env(hf_env: dict) -> dict:
    env = {name: value for name, value in hf_env.items() if not name.startswith("MALLOC_")}
    for name in ("GLIBC_TUNABLES", "LD_PRELOAD", "HF_RNN_MALLOC_TUNING"):
        env.pop(name, None)
    return env


@glibc_only
def test_tuned_malloc_reuses_freed_blocks_instead_of_faulting_them_in_again(hf_env):
    env = clean_allocator_env(hf_env)
    plain, tuned = malloc_probe(env, tune=False), malloc_probe(env, tune=True)
    assert tuned["tuned"] is True
    # untuned: a fresh mapping per round (12,288 4-KiB pages, fewer with huge pages); tuned: the heap's block again
    assert plain["faults_after_first"] > 10 * max(tuned["faults_after_first"], 1), (plain, tuned)


@glibc_only
@pytest.mark.parametrize("setting", [("HF_RNN_MALLOC_TUNING", "0"), ("MALLOC_TRIM_THRESHOLD_", "131072")])
def test_malloc_tuning_steps_aside_for_the_users_own_allocator_settings(hf_env, setting):
    env = clean_allocator_env(hf_env)
    env[setting[0]] = setting[1]
    probe = malloc_probe(env, tune=True)
    assert probe["tuned"] is False
    assert probe["faults_after_first"] > 1000  # still a fresh mapping per round: nothing was changed
