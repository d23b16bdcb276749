"""Auto classes, checkpoints, remote code and pipelines.

`import hf_rnn` registers everything in-process; a saved checkpoint must also load through remote code alone, in
a Python that cannot import hf_rnn at all (checked in a real subprocess).
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    pipeline,
)

import hf_rnn
from conftest import CELL_TYPES, HIDE_HF_RNN, PAD, randomize_biases, random_ids, tiny_config, tiny_tokenizer
from hf_rnn import (
    RNNConfig,
    RNNForCausalLM,
    RNNForSequenceClassification,
    RNNForTokenClassification,
    RNNModel,
)


PACKAGE_DIR = Path(hf_rnn.__file__).parent
LABELS = {0: "negative", 1: "positive", 2: "neutral"}
# What config.json must list so that every head loads through remote code from any checkpoint
EXPECTED_AUTO_MAP = {
    "AutoConfig": "configuration_rnn.RNNConfig",
    "AutoModel": "modeling_rnn.RNNModel",
    "AutoModelForCausalLM": "modeling_rnn.RNNForCausalLM",
    "AutoModelForSequenceClassification": "modeling_rnn.RNNForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_rnn.RNNForTokenClassification",
}

# (Auto class, the hf_rnn head registered for it)
HEADS = [
    (AutoModel, RNNModel),
    (AutoModelForCausalLM, RNNForCausalLM),
    (AutoModelForSequenceClassification, RNNForSequenceClassification),
    (AutoModelForTokenClassification, RNNForTokenClassification),
]
HEAD_IDS = [model_class.__name__ for _, model_class in HEADS]


def make_model(model_class, cell_type: str, bidirectional: bool = False, seed: int = 0, **overrides):
    """A tiny model of `model_class` in eval mode, with random biases; classifiers get three named labels."""
    if model_class in (RNNForSequenceClassification, RNNForTokenClassification):
        overrides = dict(num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **overrides)
    torch.manual_seed(seed)
    model = model_class(tiny_config(cell_type, bidirectional=bidirectional, **overrides))
    return randomize_biases(model, seed=seed).eval()


def main_output(model, input_ids, attention_mask=None) -> torch.Tensor:
    """The tensor a head is for: logits, or the backbone's last hidden state."""
    with torch.no_grad():
        out = model(input_ids, attention_mask=attention_mask)
    return out.last_hidden_state if isinstance(model, RNNModel) else out.logits


def right_padded_batch():
    """Three rows of 6, 3 and 5 real tokens, right-padded, with the mask."""
    ids = random_ids(3, 6, seed=5)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 5 + [0]])
    return ids.masked_fill(mask == 0, PAD), mask


# ---------------------------------------------------------------------------------------------------------------------
# Registration and checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def test_config_is_registered():
    """AutoConfig knows the "hf_rnn" model type and builds an RNNConfig from it."""
    config = AutoConfig.for_model("hf_rnn", vocab_size=37, hidden_size=8, embedding_size=8, cell_type="gru")
    assert type(config) is RNNConfig
    assert (config.vocab_size, config.hidden_size, config.cell_type) == (37, 8, "gru")


@pytest.mark.parametrize("auto_class, model_class", HEADS, ids=HEAD_IDS)
def test_auto_from_config_gives_the_right_class(cell_type, auto_class, model_class):
    """AutoModelForX.from_config(RNNConfig) builds exactly the hf_rnn head registered for X."""
    model = auto_class.from_config(tiny_config(cell_type))
    assert type(model) is model_class
    assert model.config.cell_type == cell_type


@pytest.mark.parametrize("auto_class, model_class", HEADS, ids=HEAD_IDS)
def test_save_pretrained_layout_and_auto_reload(cell_type, auto_class, model_class, tmp_path):
    """save_pretrained writes safetensors, the full auto_map and the source files; the Auto class reloads exactly."""
    bidirectional = model_class in (RNNModel, RNNForSequenceClassification, RNNForTokenClassification) and (
        cell_type in ("lstm", "rnn_relu")
    )  # half of the encoder checkpoints are bidirectional
    model = make_model(model_class, cell_type, bidirectional=bidirectional)
    model.save_pretrained(tmp_path)

    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files and "pytorch_model.bin" not in files
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["model_type"] == "hf_rnn"
    assert config_json["auto_map"] == EXPECTED_AUTO_MAP
    for source in ("modeling_rnn.py", "configuration_rnn.py"):
        assert (tmp_path / source).read_text() == (PACKAGE_DIR / source).read_text(), f"{source} not copied as is"

    assert type(AutoConfig.from_pretrained(tmp_path)) is RNNConfig
    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is model_class
    ids, mask = right_padded_batch()
    assert torch.equal(main_output(loaded, ids, mask), main_output(model, ids, mask))
    assert torch.equal(main_output(loaded, ids), main_output(model, ids))


@pytest.mark.parametrize("head_class", [RNNForSequenceClassification, RNNForTokenClassification])
def test_causal_lm_checkpoint_loads_into_classifiers(cell_type, head_class, tmp_path):
    """A language-model checkpoint loads into a classifier: the backbone is reused, the head is new."""
    lm = make_model(RNNForCausalLM, cell_type)
    lm.save_pretrained(tmp_path)
    torch.manual_seed(1)
    classifier, info = head_class.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    classifier.eval()

    assert sorted(info["missing_keys"]) == ["score.bias", "score.weight"]
    assert sorted(info["unexpected_keys"]) == ["lm_head.bias", "lm_head.weight"]
    lm_state = lm.model.state_dict()
    for name, tensor in classifier.model.state_dict().items():
        assert torch.equal(tensor, lm_state[name]), f"backbone weight {name} was not reused"
    ids, mask = right_padded_batch()
    with torch.no_grad():
        backbone = classifier.model(ids, attention_mask=mask).last_hidden_state
        expected = lm.model(ids, attention_mask=mask).last_hidden_state
    assert torch.equal(backbone, expected)

    # the new head follows _init_weights: normal(0, initializer_range) weights, zero bias
    score = classifier.score
    assert score.weight.shape == (3, 8)
    assert torch.equal(score.bias, torch.zeros(3))
    assert 0.03 < score.weight.std().item() < 0.3
    logits = main_output(classifier, ids, mask)
    assert logits.shape[-1] == 3 and torch.isfinite(logits).all()

    # through the Auto class too
    auto_class = dict((m, a) for a, m in HEADS)[head_class]
    assert type(auto_class.from_pretrained(tmp_path, num_labels=3)) is head_class


# ---------------------------------------------------------------------------------------------------------------------
# Remote code, in a Python that cannot import hf_rnn
# ---------------------------------------------------------------------------------------------------------------------

# Runs with `python -c`: sys.argv[1] is a JSON file listing, per cell type, the checkpoints and inputs, and naming
# the output file.
REMOTE_CODE_SCRIPT = HIDE_HF_RNN + textwrap.dedent(
    r'''
    import json
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.set_num_threads(1)
    spec = json.load(open(sys.argv[1]))
    results = {"import_error": HF_RNN_IMPORT_ERROR, "cases": {}}
    for name, case in spec["cases"].items():
        lm = AutoModelForCausalLM.from_pretrained(case["lm_dir"], trust_remote_code=True).eval()
        classifier = AutoModelForSequenceClassification.from_pretrained(case["cls_dir"], trust_remote_code=True)
        classifier.eval()
        ids, padded, mask = (torch.tensor(case[key]) for key in ("ids", "padded_ids", "mask"))
        with torch.no_grad():
            results["cases"][name] = {
                "classes": [type(m).__module__ + "." + type(m).__name__ for m in (lm, classifier)],
                "lm_logits": lm(ids).logits.tolist(),
                "greedy": lm.generate(ids, max_new_tokens=8, do_sample=False).tolist(),
                "beam": lm.generate(ids, max_new_tokens=8, num_beams=3, do_sample=False).tolist(),
                "cls_logits": classifier(padded, attention_mask=mask).logits.tolist(),
                "id2label": {str(k): v for k, v in classifier.config.id2label.items()},
            }
    results["hf_rnn_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "hf_rnn")
    json.dump(results, open(spec["output"], "w"))
    '''
)


def test_remote_code_loads_without_hf_rnn(tmp_path, hf_env):
    """In a subprocess where `import hf_rnn` fails, trust_remote_code loads the LM and the classifier of every cell
    type from the saved source files, with the same logits and generate() tokens as in-process.

    One subprocess covers the four cell types: starting Python with torch and transformers costs seconds.
    """
    ids = random_ids(3, 6, seed=6)
    padded, mask = right_padded_batch()
    models, cases = {}, {}
    for cell_type in CELL_TYPES:
        lm = make_model(RNNForCausalLM, cell_type, initializer_range=1.0)
        classifier = make_model(RNNForSequenceClassification, cell_type, seed=1)
        lm_dir, cls_dir = tmp_path / cell_type / "lm", tmp_path / cell_type / "classifier"
        lm.save_pretrained(lm_dir)
        classifier.save_pretrained(cls_dir)
        models[cell_type] = lm, classifier
        cases[cell_type] = dict(
            lm_dir=str(lm_dir), cls_dir=str(cls_dir), ids=ids.tolist(), padded_ids=padded.tolist(), mask=mask.tolist()
        )
    spec_path, output = tmp_path / "spec.json", tmp_path / "output.json"
    spec_path.write_text(json.dumps(dict(cases=cases, output=str(output))))

    workdir = tmp_path / "cwd"  # not the repository root, from which hf_rnn would be importable
    workdir.mkdir()
    env = dict(hf_env)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(spec_path)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(output.read_text())

    assert result["import_error"] is not None, "hf_rnn was importable in the subprocess: the test proves nothing"
    assert result["hf_rnn_modules"] == []
    for cell_type, (lm, classifier) in models.items():
        case = result["cases"][cell_type]
        for loaded_class, expected in zip(case["classes"], ("RNNForCausalLM", "RNNForSequenceClassification")):
            assert loaded_class.startswith("transformers_modules.") and loaded_class.endswith(f".{expected}")
        with torch.no_grad():
            assert torch.equal(torch.tensor(case["lm_logits"]), lm(ids).logits), cell_type
            expected_cls = classifier(padded, attention_mask=mask).logits
            assert torch.equal(torch.tensor(case["cls_logits"]), expected_cls), cell_type
        assert case["greedy"] == lm.generate(ids, max_new_tokens=8, do_sample=False).tolist(), cell_type
        assert case["beam"] == lm.generate(ids, max_new_tokens=8, num_beams=3, do_sample=False).tolist(), cell_type
        assert case["id2label"] == {str(k): v for k, v in LABELS.items()}, cell_type


# ---------------------------------------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------------------------------------


def test_text_generation_pipeline(cell_type):
    """pipeline("text-generation") returns the greedy continuation of generate(), batched (left-padded) too."""
    tokenizer = tiny_tokenizer()
    model = make_model(RNNForCausalLM, cell_type, initializer_range=1.0)
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompts = ["the cat sat on the", "a big red dog", "sun"]
    kwargs = dict(max_new_tokens=6, do_sample=False)

    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        expected = model.generate(ids, **kwargs)[0]
        tokens = generator(prompt, return_tensors=True, **kwargs)[0]["generated_token_ids"]
        assert list(tokens) == expected.tolist()
        text = generator(prompt, return_full_text=False, **kwargs)[0]["generated_text"]
        assert text == tokenizer.decode(expected[ids.shape[1] :], skip_special_tokens=True)
        assert generator(prompt, **kwargs)[0]["generated_text"] == prompt + text

    single = [generator(p, return_full_text=False, **kwargs)[0]["generated_text"] for p in prompts]
    assert any(single), "nothing was generated"
    batched = generator(prompts, return_full_text=False, batch_size=3, **kwargs)
    assert [b[0]["generated_text"] for b in batched] == single


def test_text_classification_pipeline(cell_type, bidirectional):
    """pipeline("text-classification") returns id2label names with softmax scores of the model, batched too."""
    tokenizer = tiny_tokenizer()
    model = make_model(RNNForSequenceClassification, cell_type, bidirectional=bidirectional, initializer_range=1.0)
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
    texts = ["the cat sat on the mat", "a dog", "it was very sad and blue"]

    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids
        probs = main_output(model, ids)[0].softmax(-1)
        top = classifier(text)[0]
        assert top["label"] == LABELS[int(probs.argmax())]
        assert top["score"] == pytest.approx(probs.max().item(), abs=1e-6)
        everything = classifier(text, top_k=None)
        assert {d["label"]: d["score"] for d in everything} == pytest.approx(
            {LABELS[i]: probs[i].item() for i in range(3)}, abs=1e-6
        )
    single = [classifier(t)[0] for t in texts]
    batched = classifier(texts, batch_size=3)  # padded to the longest text
    assert [b["label"] for b in batched] == [s["label"] for s in single]
    assert [b["score"] for b in batched] == pytest.approx([s["score"] for s in single], abs=1e-6)
