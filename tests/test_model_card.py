"""hf_rnn.model_card: cards rendered from real values, valid YAML metadata whose model-index huggingface_hub accepts,
every section present, and the templates found both in a source checkout and in an installed wheel."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from conftest import tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification
from hf_rnn.model_card import TASKS, hyperparameters_from_training_arguments, template_directory, write_model_card


ROOT = Path(__file__).resolve().parents[1]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
SECTIONS = [
    "## Model",
    "## Training data",
    "## Training hyperparameters",
    "## Evaluation",
    "## Intended use",
    "## Limitations",
    "## How to use",
]


def make_model(task: str, **config_overrides):
    if task == "causal-lm":
        return RNNForCausalLM(tiny_config(**config_overrides))
    labels = dict(id2label=LABELS, label2id={label: i for i, label in LABELS.items()})
    model_class = RNNForSequenceClassification if task == "sequence-classification" else RNNForTokenClassification
    return model_class(tiny_config(**labels, **config_overrides))


def front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def metric_values(metadata: dict) -> dict[tuple[str, str], float]:
    """(split, metric type) -> value, from the model-index."""
    (entry,) = metadata["model-index"]
    return {
        (result["dataset"].get("split"), metric["type"]): metric["value"]
        for result in entry["results"]
        for metric in result["metrics"]
    }


@pytest.mark.parametrize("task", list(TASKS))
def test_card_metadata_sections_and_model_index(tmp_path, task):
    model = make_model(task, cell_type="gru", bidirectional=task != "causal-lm")
    metrics = {
        "eval_loss": 0.5123456,
        "eval_accuracy": 0.8125,
        "eval_macro_f1": 0.75,
        "test_accuracy": 0.6875,
        "train_loss": 0.9,
        "eval_samples": 16,
        "eval_runtime": 0.12,
        "epoch": 3.0,
    }
    if task == "causal-lm":
        metrics = {"eval_loss": 3.25, "eval_perplexity": 25.79, "train_loss": 3.5, "eval_runtime": 1.0}
    hyperparameters = {"learning_rate": 0.001, "per_device_train_batch_size": 8, "seed": 7}
    output_dir = tmp_path / "my-model"
    card = write_model_card(
        output_dir,
        model=model,
        task=task,
        metrics=metrics,
        hyperparameters=hyperparameters,
        dataset_name="imdb",
        tokenizer=tiny_tokenizer(),
    )

    readme = output_dir / "README.md"
    metadata = front_matter(readme)  # valid YAML
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == TASKS[task][1]
    assert metadata["license"] == "apache-2.0"
    assert metadata["datasets"] == ["imdb"]
    assert {"hf_rnn", "rnn", "gru", "recurrent"} <= set(metadata["tags"])
    assert ("bidirectional" in metadata["tags"]) == (task != "causal-lm")

    # huggingface_hub parses the model-index back into EvalResults (ModelCard validates it on load)
    reloaded = ModelCard(readme.read_text())
    assert reloaded.data.model_name == "my-model"
    results = {(result.dataset_split, result.metric_type): result.metric_value for result in reloaded.data.eval_results}
    assert results == metric_values(metadata)
    if task == "causal-lm":
        assert results == {("validation", "loss"): 3.25, ("validation", "perplexity"): 25.79}
    else:
        # measured values only: no training loss, count, runtime or epoch in the model-index
        assert results == {
            ("validation", "loss"): 0.512346,
            ("validation", "accuracy"): 0.8125,
            ("validation", "f1"): 0.75,
            ("test", "accuracy"): 0.6875,
        }
        f1 = next(result for result in reloaded.data.eval_results if result.metric_type == "f1")
        assert f1.metric_name == "Macro F1" and f1.metric_args == {"average": "macro"}
    assert all(
        result.task_type == TASKS[task][1] and result.dataset_type == "imdb" for result in reloaded.data.eval_results
    )

    text = readme.read_text()
    assert str(card) == text
    for section in SECTIONS:
        assert section in text
    # the architecture table comes from the config, the tables from the run's values
    config = model.config
    assert "| cell type | `gru`" in text
    assert f"| recurrent layers | {config.num_hidden_layers} |" in text
    assert f"| hidden size (per direction) | {config.hidden_size} |" in text
    assert f"| vocabulary size | {config.vocab_size} |" in text
    assert f"| parameters | {model.num_parameters():,} |" in text
    assert "| learning_rate | 0.001 |" in text and "| seed | 7 |" in text
    assert "WordLevel model), 37 tokens" in text
    if task == "causal-lm":
        assert "| validation | Perplexity | 25.7900 |" in text
        assert 'AutoModelForCausalLM.from_pretrained("my-model")' in text
        assert "hf-rnn generate my-model" in text
    else:
        assert "| validation | Accuracy | 0.8125 |" in text and "| test | Accuracy | 0.6875 |" in text
        assert "| validation | examples | 16 |" in text and "| train | Loss | 0.9000 |" in text
        assert "runtime" not in text and "epoch" not in text.lower().split("## evaluation")[1].split("##")[0]
        for label_id, label in LABELS.items():
            assert f"| {label_id} | {label} |" in text
    assert "trust_remote_code=True" in text and "import hf_rnn" in text  # loading with and without hf_rnn


def test_local_data_and_base_model_stay_out_of_the_yaml(tmp_path):
    """Only Hub ids go into `datasets` / `base_model`; a local checkpoint (ULMFiT) is named in the text."""
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    model = make_model("sequence-classification")
    write_model_card(
        tmp_path / "out",
        model=model,
        task="text-classification",
        metrics={"test_accuracy": 1.0},
        hyperparameters={},
        dataset_name="local files train.csv",
        base_model=str(lm_dir),
    )
    metadata = front_matter(tmp_path / "out" / "README.md")
    assert "datasets" not in metadata and "base_model" not in metadata
    assert "ulmfit" in metadata["tags"]
    (result,) = ModelCard((tmp_path / "out" / "README.md").read_text()).data.eval_results
    assert (result.dataset_type, result.dataset_name, result.dataset_split) == (
        "custom",
        "local files train.csv",
        "test",
    )
    text = (tmp_path / "out" / "README.md").read_text()
    assert f"language model `{lm_dir}`" in text and "Trained on: local files train.csv." in text

    write_model_card(
        tmp_path / "hub",
        model=model,
        task="sequence-classification",
        metrics={},
        hyperparameters={},
        base_model="someone/rnn-lm",
    )
    metadata = front_matter(tmp_path / "hub" / "README.md")
    assert metadata["base_model"] == "someone/rnn-lm"
    assert "model-index" not in metadata  # no measured result, no model-index
    assert "No evaluation was run." in (tmp_path / "hub" / "README.md").read_text()


def test_hyperparameters_from_training_arguments(tmp_path):
    from transformers import TrainingArguments

    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=3e-3,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        report_to=[],
        use_cpu=True,
    )
    hyperparameters = hyperparameters_from_training_arguments(arguments)
    assert hyperparameters["learning_rate"] == 3e-3
    assert hyperparameters["total_train_batch_size"] == 8
    assert hyperparameters["lr_scheduler_type"] == "linear"  # the enum's value, a plain string
    assert "max_steps" not in hyperparameters  # -1: epochs decide


def test_bad_arguments_raise_value_errors(tmp_path):
    model = make_model("causal-lm")
    with pytest.raises(ValueError, match="`task` must be one of"):
        write_model_card(tmp_path, model=model, task="translation", metrics={}, hyperparameters={})
    with pytest.raises(ValueError, match="RNNForCausalLM"):
        write_model_card(tmp_path, model=model, task="sequence-classification", metrics={}, hyperparameters={})
    with pytest.raises(ValueError, match="`metrics` must be a mapping"):
        write_model_card(tmp_path, model=model, task="causal-lm", metrics=[0.5], hyperparameters={})
    with pytest.raises(ValueError, match="`hyperparameters` must be a mapping"):
        write_model_card(tmp_path, model=model, task="causal-lm", metrics={}, hyperparameters=None)
    assert not (tmp_path / "README.md").exists()


def test_templates_ship_in_the_wheel(tmp_path):
    """The top-level model_cards/ folder is package data: a wheel installs it as hf_rnn/model_cards/."""
    assert template_directory() == ROOT / "model_cards"  # a source checkout reads the canonical copies
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "hf_rnn", "model_cards"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("hf_rnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template, *_ in TASKS.values():
        assert f"hf_rnn/model_cards/{template}" in names
        packaged = zipfile.ZipFile(wheel).read(f"hf_rnn/model_cards/{template}").decode()
        assert packaged == (ROOT / "model_cards" / template).read_text()
