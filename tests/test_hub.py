"""The Hub workflow: push, then load by repo id, against a local Hub server (tests/hub_server.py).

Every client step runs in a real subprocess of this Python with `HF_ENDPOINT` pointing at the server, a token, a
fresh `HF_HOME` and `HF_HUB_DISABLE_XET=1`: `huggingface_hub` and `transformers` read their settings at import and
run unchanged, only the server is fake. Steps are grouped per subprocess (starting Python with torch and transformers
costs seconds); expected outputs are computed here, in-process, from the same tiny models.

An opt-in test runs the same push/load flow against the real Hub when `HF_RNN_REAL_HUB_TOKEN` holds a write token.
"""

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

import hf_rnn
from conftest import HIDE_HF_RNN, randomize_biases, random_ids, tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM, RNNForSequenceClassification
from hf_rnn.cli import main as cli_main
from hf_rnn.hub import AUTO_MAP, stage_folder
from hub_server import LocalHub


PACKAGE_DIR = Path(hf_rnn.__file__).parent
HF_RNN_CLI = Path(sys.executable).with_name("hf-rnn")  # the console script installed next to this Python
LABELS = {0: "negative", 1: "positive", 2: "neutral"}
PROMPTS = ["the cat sat on the", "a big red dog", "sun"]
TEXTS = ["the cat sat on the mat", "a dog", "it was very sad and blue"]
CLIENT_TIMEOUT = 300


# ---------------------------------------------------------------------------------------------------------------------
# Client subprocesses
# ---------------------------------------------------------------------------------------------------------------------


# Every client script starts with this: sys.argv[1] is a JSON spec naming the output file; `results` goes there.
PRELUDE = textwrap.dedent(
    """
    import json
    import sys

    spec = json.load(open(sys.argv[1]))
    results = {}


    def class_name(obj):
        return type(obj).__module__ + "." + type(obj).__name__


    def error_of(call):
        try:
            call()
        except Exception as error:  # noqa: BLE001
            return {"type": type(error).__name__, "mro": [c.__name__ for c in type(error).__mro__], "message": str(error)}
        return None
    """
)
EPILOGUE = '\njson.dump(results, open(spec["output"], "w"))\n'


def run_client(script: str, spec: dict, env: dict, workdir: Path, hide_hf_rnn: bool = False) -> dict:
    """Run a client script in a subprocess of this Python; return the `results` it wrote."""
    workdir.mkdir(parents=True, exist_ok=True)  # never the repository root, from which hf_rnn is importable
    name = uuid.uuid4().hex[:8]
    spec_path, output = workdir / f"spec-{name}.json", workdir / f"output-{name}.json"
    spec_path.write_text(json.dumps({**spec, "output": str(output)}))
    env = dict(env)
    env.pop("PYTHONPATH", None)
    code = (HIDE_HF_RNN if hide_hf_rnn else "HF_RNN_IMPORT_ERROR = None\n") + PRELUDE + script + EPILOGUE
    proc = subprocess.run(
        [sys.executable, "-c", code, str(spec_path)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"client failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    return json.loads(output.read_text())


@pytest.fixture(scope="module")
def hub_server():
    """A local Hub on 127.0.0.1 (random port), in a background thread, for the whole module."""
    with LocalHub(username="user") as hub:
        yield hub


def assert_clean(hub: LocalHub) -> None:
    """The client called nothing the server lacks, and the server never failed."""
    assert hub.unhandled == [], f"endpoints the local Hub does not implement were called: {hub.unhandled}"
    assert hub.errors == [], f"the local Hub failed: {hub.errors}"


# ---------------------------------------------------------------------------------------------------------------------
# Tiny models, and what they must give wherever they are loaded
# ---------------------------------------------------------------------------------------------------------------------


def make_lm() -> RNNForCausalLM:
    torch.manual_seed(0)
    return randomize_biases(RNNForCausalLM(tiny_config("lstm", initializer_range=1.0))).eval()


def make_classifier() -> RNNForSequenceClassification:
    torch.manual_seed(1)
    config = tiny_config(
        "gru", bidirectional=True, initializer_range=1.0,
        num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    return randomize_biases(RNNForSequenceClassification(config), seed=1).eval()


def expected_outputs(lm, classifier, tokenizer) -> dict:
    """What a correct load of the pushed repos reproduces: logits, greedy tokens, pipeline outputs."""
    ids = random_ids(2, 5, seed=3)
    with torch.no_grad():
        expected = {
            "ids": ids.tolist(),
            "logits": lm(ids).logits,
            "greedy": lm.generate(ids, max_new_tokens=8).tolist(),
        }
    generator = pipeline("text-generation", model=lm, tokenizer=tokenizer)
    expected["generated"] = [
        generator(prompt, max_new_tokens=6, do_sample=False, return_full_text=False)[0]["generated_text"]
        for prompt in PROMPTS
    ]
    assert any(expected["generated"]), "the tiny LM generates nothing: the comparison would prove little"
    text_classifier = pipeline("text-classification", model=classifier, tokenizer=tokenizer)
    expected["classified"] = [text_classifier(text, top_k=None) for text in TEXTS]
    return expected


def save_models(root: Path) -> dict:
    """The tiny LM and classifier, each saved with the tokenizer (save_pretrained) under `root`."""
    lm, classifier, tokenizer = make_lm(), make_classifier(), tiny_tokenizer()
    for model, name in ((lm, "lm"), (classifier, "classifier")):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return {
        "lm": lm,
        "lm_dir": root / "lm",
        "cls_dir": root / "classifier",
        "expected": expected_outputs(lm, classifier, tokenizer),
    }


# Pushes as a user does from Python, each model and tokenizer twice (the second push changes nothing).
PUSH_TO_HUB_SCRIPT = """
import hf_rnn  # noqa: F401  (the pushing side has hf_rnn)
import torch
from huggingface_hub import HfApi
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

torch.set_num_threads(1)
api = HfApi()
for repo_id, folder, private in spec["pushes"]:
    auto_class = AutoModelForCausalLM if repo_id.endswith("lm") else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.push_to_hub(repo_id, private=private)
    tokenizer.push_to_hub(repo_id)
    sha = api.model_info(repo_id).sha
    model.push_to_hub(repo_id)  # nothing changed
    tokenizer.push_to_hub(repo_id)
    results[repo_id] = {
        "class": class_name(model),
        "sha": sha,
        "sha_after_second_push": api.model_info(repo_id).sha,
        "files": api.list_repo_files(repo_id),
        "private": api.model_info(repo_id).private,
    }
"""

# Pushes saved folders with huggingface_hub alone (no torch: a second or so), as `hf upload` would.
UPLOAD_FOLDER_SCRIPT = """
from huggingface_hub import HfApi

api = HfApi()
for repo_id, folder, private in spec["pushes"]:
    api.create_repo(repo_id, private=private)
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload saved model")
"""

# Loads both repos by id and reports what the tests compare: with hf_rnn installed, offline, or with hf_rnn hidden
# (trust_remote_code).
LOAD_SCRIPT = """
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

torch.set_num_threads(1)
remote = spec["trust_remote_code"]
if not remote:
    import hf_rnn  # noqa: F401  (installed: importing it registers the hf_rnn classes with the Auto classes)
lm = AutoModelForCausalLM.from_pretrained(spec["lm_repo"], trust_remote_code=remote).eval()
save_file({name: tensor.detach().clone().contiguous() for name, tensor in lm.state_dict().items()}, spec["weights"])
ids = torch.tensor(spec["ids"])
with torch.no_grad():
    results["logits"] = lm(ids).logits.tolist()
    results["greedy"] = lm.generate(ids, max_new_tokens=8).tolist()
tokenizer = AutoTokenizer.from_pretrained(spec["lm_repo"])
generator = pipeline("text-generation", model=spec["lm_repo"], trust_remote_code=remote)
results["generated"] = [
    generator(prompt, max_new_tokens=6, do_sample=False, return_full_text=False)[0]["generated_text"]
    for prompt in spec["prompts"]
]
classifier = pipeline("text-classification", model=spec["cls_repo"], trust_remote_code=remote)
results["classified"] = [classifier(text, top_k=None) for text in spec["texts"]]
results["classes"] = [class_name(lm), class_name(generator.model), class_name(classifier.model)]
results["tokenizer"] = [class_name(tokenizer), tokenizer(spec["prompts"][0]).input_ids]
results["hf_rnn_import_error"] = HF_RNN_IMPORT_ERROR
results["hf_rnn_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "hf_rnn")

if spec.get("errors"):
    from huggingface_hub import hf_hub_download
    from transformers.utils import cached_file

    results["errors"] = {
        "model_missing_repo": error_of(lambda: AutoModelForCausalLM.from_pretrained("user/no-such-model")),
        "tokenizer_missing_repo": error_of(lambda: AutoTokenizer.from_pretrained("user/no-such-model")),
        "missing_file": error_of(lambda: cached_file(spec["lm_repo"], "no_such_file.json")),
        "download_missing_file": error_of(lambda: hf_hub_download(spec["lm_repo"], "no_such_file.json")),
        "missing_revision": error_of(
            lambda: AutoModelForCausalLM.from_pretrained(spec["lm_repo"], revision="no-such-branch")
        ),
    }
"""


def load_spec(tmp_path: Path, lm_repo: str, cls_repo: str, ids: list, **options) -> dict:
    weights = str(tmp_path / f"weights-{uuid.uuid4().hex[:8]}.safetensors")
    spec = {"lm_repo": lm_repo, "cls_repo": cls_repo, "ids": ids, "prompts": PROMPTS, "texts": TEXTS}
    return {**spec, "weights": weights, "trust_remote_code": False, "errors": False, **options}


def assert_same_outputs(result: dict, spec: dict, models: dict, where: str) -> None:
    """The loaded LM has the pushed weights and both loaded repos give the outputs of the models that were pushed."""
    expected = models["expected"]
    weights, reference = load_file(spec["weights"]), models["lm"].state_dict()
    assert sorted(weights) == sorted(reference), where
    for name, tensor in reference.items():
        assert torch.equal(weights[name], tensor), f"{where}: weight {name} differs from the pushed model"
    assert torch.equal(torch.tensor(result["logits"]), expected["logits"]), where
    assert result["greedy"] == expected["greedy"], where
    assert result["generated"] == expected["generated"], where
    for got, want in zip(result["classified"], expected["classified"]):
        assert [d["label"] for d in got] == [d["label"] for d in want], where
        assert [d["score"] for d in got] == pytest.approx([d["score"] for d in want], abs=1e-6), where
    assert {d["label"] for d in result["classified"][0]} == set(LABELS.values()), where


# ---------------------------------------------------------------------------------------------------------------------
# Push, then load by repo id
# ---------------------------------------------------------------------------------------------------------------------


def test_push_to_hub_then_load_installed_then_offline(hub_server, tmp_path):
    """model.push_to_hub / tokenizer.push_to_hub publish safetensors (through LFS), config.json with auto_map, the
    modeling source, generation_config.json, the tokenizer and a card; pushing unchanged files again makes no new
    commit. In a fresh process with hf_rnn, the Auto classes, AutoTokenizer and both pipelines load the repos by id
    and reproduce the pushed models exactly (weights, logits, greedy tokens, pipeline outputs); a missing repo, file
    or revision gives a clear error. Then, with HF_HUB_OFFLINE=1 and the same cache, all of it loads again without a
    single request.

    One test, not four: each step needs the previous one, and each client process costs seconds to start."""
    models = save_models(tmp_path / "saved")
    lm_repo, cls_repo = "user/tiny-lm", "user/tiny-classifier"
    spec = {"pushes": [(lm_repo, str(models["lm_dir"]), False), (cls_repo, str(models["cls_dir"]), True)]}
    pushed = run_client(PUSH_TO_HUB_SCRIPT, spec, hub_server.client_env(tmp_path / "pusher"), tmp_path / "work")
    for repo_id in (lm_repo, cls_repo):
        result = pushed[repo_id]
        files = set(result["files"])
        expected_files = {"model.safetensors", "config.json", "modeling_rnn.py", "configuration_rnn.py", "README.md"}
        expected_files |= {"tokenizer.json", "tokenizer_config.json"}
        assert expected_files <= files, f"{repo_id}: missing {expected_files - files}"
        assert "pytorch_model.bin" not in files
        assert result["class"].startswith("hf_rnn.")
        assert result["sha_after_second_push"] == result["sha"], f"{repo_id}: an unchanged push made a commit"

        repo = hub_server.repo(repo_id)
        assert repo.head().id == result["sha"]
        head = repo.head().files
        assert head["model.safetensors"].lfs and not head["config.json"].lfs
        config = json.loads(head["config.json"].content)
        assert config["model_type"] == "hf_rnn" and config["auto_map"] == AUTO_MAP
        for source in ("modeling_rnn.py", "configuration_rnn.py"):
            assert head[source].content == (PACKAGE_DIR / source).read_bytes()
        assert head["README.md"].content.startswith(b"---\n")
    assert "generation_config.json" in pushed[lm_repo]["files"]
    assert pushed[cls_repo]["private"] and not pushed[lm_repo]["private"]
    assert any(repo_id == lm_repo for repo_id, _, _ in hub_server.lfs_uploads), "no LFS upload happened"

    env = hub_server.client_env(tmp_path / "hf_home")
    spec = load_spec(tmp_path, lm_repo, cls_repo, models["expected"]["ids"], errors=True)
    result = run_client(LOAD_SCRIPT, spec, env, tmp_path / "work")
    assert result["classes"][0] == "hf_rnn.modeling_rnn.RNNForCausalLM"
    assert result["classes"][2] == "hf_rnn.modeling_rnn.RNNForSequenceClassification"
    assert result["tokenizer"][1] == tiny_tokenizer()(PROMPTS[0]).input_ids
    assert_same_outputs(result, spec, models, "installed")

    errors = result["errors"]
    for case in ("model_missing_repo", "tokenizer_missing_repo"):
        assert errors[case] is not None and "OSError" in errors[case]["mro"], case
        assert "user/no-such-model" in errors[case]["message"], case
    assert "OSError" in errors["missing_file"]["mro"]
    assert lm_repo in errors["missing_file"]["message"] and "no_such_file.json" in errors["missing_file"]["message"]
    assert "EntryNotFoundError" in errors["download_missing_file"]["mro"]
    assert "OSError" in errors["missing_revision"]["mro"]
    assert "no-such-branch" in errors["missing_revision"]["message"]

    with hub_server.lock:
        requests_before = len(hub_server.log)
    spec = load_spec(tmp_path, lm_repo, cls_repo, models["expected"]["ids"])
    result = run_client(LOAD_SCRIPT, spec, dict(env, HF_HUB_OFFLINE="1"), tmp_path / "work")
    assert_same_outputs(result, spec, models, "offline")
    assert hub_server.log[requests_before:] == [], "the offline load still called the Hub"
    assert_clean(hub_server)


def test_push_then_load_through_remote_code_without_hf_rnn(hub_server, tmp_path):
    """Pushed folders load by repo id in a Python where `import hf_rnn` fails: trust_remote_code runs the pushed
    source files, with the same weights and outputs, and the classifier pipeline returns the id2label names."""
    models = save_models(tmp_path / "saved")
    lm_repo, cls_repo = "user/remote-lm", "user/remote-classifier"
    spec = {"pushes": [(lm_repo, str(models["lm_dir"]), False), (cls_repo, str(models["cls_dir"]), True)]}
    run_client(UPLOAD_FOLDER_SCRIPT, spec, hub_server.client_env(tmp_path / "pusher"), tmp_path / "work")

    spec = load_spec(tmp_path, lm_repo, cls_repo, models["expected"]["ids"], trust_remote_code=True)
    env = hub_server.client_env(tmp_path / "hf_home")
    result = run_client(LOAD_SCRIPT, spec, env, tmp_path / "work", hide_hf_rnn=True)
    assert result["hf_rnn_import_error"] is not None, "hf_rnn was importable: the test proves nothing"
    assert result["hf_rnn_modules"] == []
    for name, expected in zip(result["classes"], ("RNNForCausalLM", "RNNForCausalLM", "RNNForSequenceClassification")):
        assert name.startswith("transformers_modules.") and name.endswith(f".modeling_rnn.{expected}"), name
    assert_same_outputs(result, spec, models, "remote code")
    assert_clean(hub_server)


def test_missing_repo_file_and_revision_raise_typed_errors(hub_server, tmp_path):
    """huggingface_hub raises RepositoryNotFoundError, EntryNotFoundError and RevisionNotFoundError (from the
    server's X-Error-Code), naming what is missing; a commit to a missing repo fails the same way."""
    script = """
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    api.create_repo("user/errors")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="user/errors")
    results["errors"] = {
        "download_missing_repo": error_of(lambda: hf_hub_download("user/no-such-repo", "config.json")),
        "info_missing_repo": error_of(lambda: api.model_info("user/no-such-repo")),
        "upload_missing_repo": error_of(
            lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="user/no-such-repo")
        ),
        "download_missing_file": error_of(lambda: hf_hub_download("user/errors", "no_such_file.json")),
        "download_missing_revision": error_of(lambda: hf_hub_download("user/errors", "config.json", revision="v9")),
        "tree_missing_folder": error_of(lambda: list(api.list_repo_tree("user/errors", path_in_repo="no-such-dir"))),
    }
    results["exists"] = [api.repo_exists("user/errors"), api.repo_exists("user/no-such-repo"),
                         api.file_exists("user/errors", "config.json"), api.file_exists("user/errors", "nope.json")]
    """
    result = run_client(textwrap.dedent(script), {}, hub_server.client_env(tmp_path / "hf_home"), tmp_path / "work")
    errors = result["errors"]
    for case in ("download_missing_repo", "info_missing_repo", "upload_missing_repo"):
        assert errors[case]["type"] == "RepositoryNotFoundError", (case, errors[case])
        assert "user/no-such-repo" in errors[case]["message"], case
    assert "EntryNotFoundError" in errors["download_missing_file"]["mro"]
    assert "no_such_file.json" in errors["download_missing_file"]["message"]
    assert errors["download_missing_revision"]["type"] == "RevisionNotFoundError"
    assert "v9" in errors["download_missing_revision"]["message"]
    assert "EntryNotFoundError" in errors["tree_missing_folder"]["mro"]
    assert result["exists"] == [True, False, True, False]
    assert_clean(hub_server)


# ---------------------------------------------------------------------------------------------------------------------
# hf-rnn push
# ---------------------------------------------------------------------------------------------------------------------


def saved_lm_folder(folder: Path, complete: bool = True) -> Path:
    """A tiny LM and its tokenizer as save_pretrained writes them; `complete=False` strips what older or hand-made
    folders lack (auto_map, the modeling sources, generation_config.json)."""
    make_lm().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    if not complete:
        config = json.loads((folder / "config.json").read_text())
        del config["auto_map"]
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        for name in ("modeling_rnn.py", "configuration_rnn.py", "generation_config.json"):
            (folder / name).unlink()
    return folder


def test_stage_folder_completes_without_touching_the_folder(tmp_path):
    """The upload staging adds auto_map for every head, the modeling sources and a generation config to a folder
    that lacks them, deterministically, and leaves the folder itself unchanged."""
    folder = saved_lm_folder(tmp_path / "model", complete=False)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    stagings = []
    for name in ("staging-1", "staging-2"):
        staging = tmp_path / name
        staging.mkdir()
        added = stage_folder(folder, staging)
        stagings.append({path.name: path.read_bytes() for path in staging.iterdir()})
    assert added == ["config.json (auto_map)", "configuration_rnn.py", "modeling_rnn.py", "generation_config.json"]
    assert stagings[0] == stagings[1], "staging is not deterministic: a second push would make a new commit"
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before, "the folder was modified"
    staged = stagings[0]
    assert json.loads(staged["config.json"])["auto_map"] == AUTO_MAP
    assert staged["modeling_rnn.py"] == (PACKAGE_DIR / "modeling_rnn.py").read_bytes()
    assert json.loads(staged["generation_config.json"])["eos_token_id"] == 1
    assert staged["model.safetensors"] == before["model.safetensors"]

    complete = saved_lm_folder(tmp_path / "complete")
    staging = tmp_path / "staging-3"
    staging.mkdir()
    assert stage_folder(complete, staging) == []


def test_push_cli_refuses_folders_that_are_not_hf_rnn_models(tmp_path, capsys):
    """`hf-rnn push` checks the folder before any network call: one clear line and exit status 2."""
    cases = {}
    cases["not-a-folder"] = tmp_path / "missing"
    cases["no-config"] = tmp_path / "no-config"
    cases["no-config"].mkdir()
    cases["other-model-type"] = tmp_path / "other"
    cases["other-model-type"].mkdir()
    (cases["other-model-type"] / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    cases["pickle-only"] = saved_lm_folder(tmp_path / "pickle")
    (cases["pickle-only"] / "model.safetensors").rename(cases["pickle-only"] / "pytorch_model.bin")
    cases["no-weights"] = saved_lm_folder(tmp_path / "no-weights")
    (cases["no-weights"] / "model.safetensors").unlink()
    expected = {
        "not-a-folder": "is not a folder",
        "no-config": "has no config.json",
        "other-model-type": "model_type 'gpt2', not 'hf_rnn'",
        "pickle-only": "only pickled PyTorch weights (pytorch_model.bin)",
        "no-weights": "has no safetensors weights",
    }
    capsys.readouterr()  # drop save_pretrained's progress bars
    for case, folder in cases.items():
        assert cli_main(["push", str(folder), "user/x"]) == 2, case
        err = capsys.readouterr().err
        assert err.startswith("hf-rnn push: error: ") and expected[case] in err, (case, err)
        assert err.count("\n") == 1, err


def test_push_cli_publishes_and_a_second_push_makes_no_commit(hub_server, tmp_path):
    """`hf-rnn push FOLDER user/x --private` (the console script) publishes the safetensors weights through LFS,
    config.json with auto_map for every head, the modeling sources, the tokenizer and generation_config.json,
    completing a folder that lacks some; pushing the same folder again leaves the repo's sha (HfApi().model_info)
    unchanged; `--revision dev` pushes a changed folder to a new branch and leaves main alone."""
    folder = saved_lm_folder(tmp_path / "model", complete=False)
    script = """
    import subprocess
    from pathlib import Path
    from huggingface_hub import HfApi

    api = HfApi()
    results["runs"], results["shas"] = [], []
    runs = [["--private", "--commit-message", "Add tiny LM"], ["--private", "--commit-message", "Add tiny LM"],
            ["--revision", "dev"]]
    for options in runs:
        if options[0] == "--revision":
            Path(spec["folder"], "README.md").write_text("---\\nlicense: mit\\n---\\n# A tiny LM\\n")
        proc = subprocess.run([spec["cli"], "push", spec["folder"], "user/x", *options], capture_output=True, text=True)
        results["runs"].append([proc.returncode, proc.stdout, proc.stderr[-3000:]])
        if proc.returncode:
            break
        results["shas"].append(api.model_info("user/x").sha)
    results["private"] = api.model_info("user/x").private
    results["commits"] = [c.title for c in api.list_repo_commits("user/x")]
    results["dev_commits"] = [c.title for c in api.list_repo_commits("user/x", revision="dev")]
    results["files"] = api.list_repo_files("user/x")
    """
    spec = {"cli": str(HF_RNN_CLI), "folder": str(folder)}
    result = run_client(textwrap.dedent(script), spec, hub_server.client_env(tmp_path / "hf_home"), tmp_path / "work")
    for returncode, stdout, stderr in result["runs"]:
        assert returncode == 0, stderr
    (_, first, _), (_, second, _), (_, third, _) = result["runs"]
    assert "Pushed" in first and "user/x" in first
    assert "Nothing to push" in second
    assert result["shas"][0] == result["shas"][1], "the second push of unchanged files made a commit"
    assert result["shas"][2] == result["shas"][0], "a push to the dev branch moved main"
    assert result["private"]
    assert result["commits"] == ["Add tiny LM", "initial commit"]
    assert "Pushed" in third and "(dev)" in third
    assert result["dev_commits"] == ["Upload hf_rnn model with hf-rnn push", "Add tiny LM", "initial commit"]

    repo = hub_server.repo("user/x")
    assert repo.head().id == result["shas"][0]
    head = repo.head().files
    assert set(result["files"]) == set(head)
    expected = {"model.safetensors", "config.json", "modeling_rnn.py", "configuration_rnn.py", "tokenizer.json",
                "tokenizer_config.json", "generation_config.json"}  # fmt: skip
    assert expected <= set(head), expected - set(head)
    assert head["model.safetensors"].lfs
    assert head["model.safetensors"].content == (folder / "model.safetensors").read_bytes()
    assert json.loads(head["config.json"].content)["auto_map"] == AUTO_MAP
    for source in ("modeling_rnn.py", "configuration_rnn.py"):
        assert head[source].content == (PACKAGE_DIR / source).read_bytes()
    assert not (folder / "modeling_rnn.py").exists(), "hf-rnn push modified the folder"
    dev = repo.head("dev").files
    assert set(dev) == set(head) | {"README.md"} and dev["README.md"].content.startswith(b"---\nlicense: mit")
    assert_clean(hub_server)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer(push_to_hub=True)
# ---------------------------------------------------------------------------------------------------------------------


def test_trainer_pushes_checkpoints_and_the_final_card(hub_server, tmp_path):
    """Trainer(push_to_hub=True, hub_strategy="every_save") pushes at every save during training, and push_to_hub()
    at the end publishes the weights, the modeling sources and a README.md model card."""
    script = """
    import hf_rnn
    import torch
    from huggingface_hub import HfApi
    from transformers import Trainer, TrainingArguments

    torch.set_num_threads(1)
    config = hf_rnn.RNNConfig(vocab_size=37, embedding_size=8, hidden_size=8, num_hidden_layers=1, cell_type="gru",
                              pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(0)
    model = hf_rnn.RNNForCausalLM(config)
    generator = torch.Generator().manual_seed(0)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(3, 37, (8, 6), generator=generator)]
    args = TrainingArguments(
        output_dir=spec["output_dir"], report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        per_device_train_batch_size=2, max_steps=4, save_strategy="steps", save_steps=2, logging_steps=2,
        push_to_hub=True, hub_model_id="user/trained", hub_strategy="every_save",
    )
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    api = HfApi()
    results["commits_after_train"] = [c.title for c in api.list_repo_commits("user/trained")]
    trainer.push_to_hub(commit_message="End of training")
    results["commits"] = [c.title for c in api.list_repo_commits("user/trained")]
    results["files"] = api.list_repo_files("user/trained")
    """
    spec = {"output_dir": str(tmp_path / "trainer")}
    result = run_client(textwrap.dedent(script), spec, hub_server.client_env(tmp_path / "hf_home"), tmp_path / "work")
    assert len(result["commits_after_train"]) >= 2, result["commits_after_train"]  # initial + saves in training
    assert result["commits"][0] == "End of training"
    files = set(result["files"])
    assert {"README.md", "model.safetensors", "config.json", "modeling_rnn.py", "configuration_rnn.py"} <= files

    head = hub_server.repo("user/trained").head().files
    assert head["model.safetensors"].lfs
    assert json.loads(head["config.json"].content)["auto_map"] == AUTO_MAP
    card = head["README.md"].content.decode()
    assert card.startswith("---\n") and "library_name: transformers" in card
    assert_clean(hub_server)


@pytest.mark.parametrize("recipe", ["train-lm", "train-classifier"])
def test_training_recipe_push_to_hub_publishes_the_finished_folder(hub_server, tmp_path, recipe):
    """`hf-rnn train-lm/train-classifier --push_to_hub` publish weights, config with auto_map, the modeling sources,
    tokenizer, generation config (LM) and the recipe's own model card (with its model-index), not Trainer's."""
    tiny_tokenizer().save_pretrained(tmp_path / "tokenizer")
    words = "the a cat dog sat ran on under mat rug big small red blue".split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(4 + i % 5)) for i in range(60)]
    if recipe == "train-lm":
        (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
        (tmp_path / "valid.txt").write_text("\n".join(lines[:10]) + "\n")
        data = ["--train_files", str(tmp_path / "train.txt"), "--validation_files", str(tmp_path / "valid.txt"),
                "--block_size", "8"]  # fmt: skip
        expected_tag = "pipeline_tag: text-generation"
    else:
        rows = "text,label\n" + "".join(f"{line},{'pos' if 'cat' in line else 'neg'}\n" for line in lines)
        (tmp_path / "train.csv").write_text(rows)
        (tmp_path / "valid.csv").write_text(rows)
        data = ["--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "valid.csv")]
        expected_tag = "pipeline_tag: text-classification"
    repo_id = f"user/recipe-{recipe}"
    command = [
        str(Path(sys.executable).parent / "hf-rnn"), recipe, *data,
        "--tokenizer_name_or_path", str(tmp_path / "tokenizer"),
        "--embedding_size", "8", "--hidden_size", "8", "--num_hidden_layers", "1",
        "--per_device_train_batch_size", "4", "--max_steps", "2", "--save_strategy", "no", "--report_to", "none",
        "--use_cpu", "true", "--disable_tqdm", "true", "--output_dir", str(tmp_path / "out"),
        "--push_to_hub", "true", "--hub_model_id", repo_id,
    ]  # fmt: skip
    env = hub_server.client_env(tmp_path / "hf_home")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]

    head = hub_server.repo(repo_id).head().files
    expected = {"model.safetensors", "config.json", "modeling_rnn.py", "configuration_rnn.py", "tokenizer.json",
                "README.md", "all_results.json"}  # fmt: skip
    if recipe == "train-lm":
        expected.add("generation_config.json")
    assert expected <= set(head), sorted(head)
    # safe formats only: Trainer's pickled training_args.bin is not published
    assert not [name for name in head if name.endswith((".bin", ".pt", ".pkl"))], sorted(head)
    assert not (tmp_path / "out" / "training_args.bin").exists()
    assert json.loads(head["config.json"].content)["auto_map"] == AUTO_MAP
    card = head["README.md"].content.decode()
    assert expected_tag in card and "model-index" in card and "hf_rnn" in card
    local_card = (tmp_path / "out" / "README.md").read_text()
    assert card == local_card  # the recipe's card, byte for byte
    assert_clean(hub_server)


# ---------------------------------------------------------------------------------------------------------------------
# The real Hub (opt-in)
# ---------------------------------------------------------------------------------------------------------------------

REAL_HUB_TOKEN = os.environ.get("HF_RNN_REAL_HUB_TOKEN")


@pytest.mark.skipif(
    not REAL_HUB_TOKEN,
    reason="opt-in: set HF_RNN_REAL_HUB_TOKEN to a write token (and have network access) to run the push/load flow "
    "against the real Hub (https://huggingface.co, or HF_RNN_REAL_HUB_ENDPOINT) in a temporary private repo",
)
def test_push_and_load_against_the_real_hub(tmp_path):
    """The same flow against the real Hub: push the LM and tokenizer to a new private repo, load it by id with hf_rnn
    installed and through remote code in fresh caches, compare, and delete the repo whatever happens."""
    lm, tokenizer = make_lm(), tiny_tokenizer()
    folder = tmp_path / "lm"
    lm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))}
    env.pop("HF_ENDPOINT", None)
    if os.environ.get("HF_RNN_REAL_HUB_ENDPOINT"):
        env["HF_ENDPOINT"] = os.environ["HF_RNN_REAL_HUB_ENDPOINT"]
    env.update(HF_TOKEN=REAL_HUB_TOKEN, TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_PROGRESS_BARS="1")

    def client(script, spec, name, **kwargs):
        return run_client(textwrap.dedent(script), spec, dict(env, HF_HOME=str(tmp_path / name)), tmp_path / name,
                          **kwargs)  # fmt: skip

    push = """
    import hf_rnn
    from huggingface_hub import HfApi
    from transformers import AutoModelForCausalLM, AutoTokenizer

    api = HfApi()
    repo_id = f"{api.whoami()['name']}/hf-rnn-test-{spec['suffix']}"
    results["repo_id"] = repo_id
    json.dump(results, open(spec["output"], "w"))  # so that the repo is deleted even if the push fails midway
    api.create_repo(repo_id, private=True)
    model = AutoModelForCausalLM.from_pretrained(spec["folder"])
    model.push_to_hub(repo_id, private=True)
    AutoTokenizer.from_pretrained(spec["folder"]).push_to_hub(repo_id)
    sha = api.model_info(repo_id).sha
    model.push_to_hub(repo_id)
    results["shas"] = [sha, api.model_info(repo_id).sha]
    results["files"] = api.list_repo_files(repo_id)
    """
    load = """
    import torch
    from transformers import AutoModelForCausalLM, pipeline

    torch.set_num_threads(1)
    if not spec["remote"]:
        import hf_rnn  # noqa: F401
    lm = AutoModelForCausalLM.from_pretrained(spec["repo_id"], trust_remote_code=spec["remote"]).eval()
    with torch.no_grad():
        results["greedy"] = lm.generate(torch.tensor(spec["ids"]), max_new_tokens=8).tolist()
    generator = pipeline("text-generation", model=spec["repo_id"], trust_remote_code=spec["remote"])
    results["generated"] = generator(spec["prompt"], max_new_tokens=6, do_sample=False, return_full_text=False)
    results["class"] = class_name(lm)
    """
    ids = random_ids(2, 5, seed=3)
    with torch.no_grad():
        greedy = lm.generate(ids, max_new_tokens=8).tolist()
    text = pipeline("text-generation", model=lm, tokenizer=tokenizer)(
        PROMPTS[0], max_new_tokens=6, do_sample=False, return_full_text=False
    )  # fmt: skip
    spec = {"folder": str(folder), "suffix": uuid.uuid4().hex[:10]}
    output = tmp_path / "push"
    repo_id = None
    try:
        try:
            pushed = client(push, spec, "push")
        finally:
            outputs = sorted(output.glob("output-*.json")) if output.exists() else []
            repo_id = json.loads(outputs[0].read_text()).get("repo_id") if outputs else None
        assert pushed["shas"][0] == pushed["shas"][1], "an unchanged push made a commit on the real Hub"
        assert {"model.safetensors", "config.json", "modeling_rnn.py", "tokenizer.json"} <= set(pushed["files"])
        for remote, name in ((False, "installed"), (True, "remote")):
            spec = {"repo_id": repo_id, "remote": remote, "ids": ids.tolist(), "prompt": PROMPTS[0]}
            loaded = client(load, spec, name, hide_hf_rnn=remote)
            assert loaded["greedy"] == greedy, name
            assert loaded["generated"] == text, name
            assert loaded["class"].startswith("transformers_modules." if remote else "hf_rnn."), name
    finally:
        if repo_id is not None:
            cleanup = 'from huggingface_hub import HfApi\nHfApi().delete_repo(spec["repo_id"], missing_ok=True)\n'
            client(cleanup, {"repo_id": repo_id}, "cleanup")


def test_local_hub_serves_byte_ranges_and_typed_404s():
    """The server itself: a resolve answers byte ranges (resumed downloads) and a typed 404 for a missing file."""
    import urllib.request

    with LocalHub() as hub:
        with hub.lock:
            from hub_server import Blob, Repo

            repo = Repo("user/raw", "model", private=False)
            repo.add_commit("main", {"a.txt": Blob(b"0123456789", lfs=False)}, "initial commit")
            hub.repos[("model", "user/raw")] = repo
        request = urllib.request.Request(f"{hub.url}/user/raw/resolve/main/a.txt", headers={"Range": "bytes=3-5"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 206 and response.read() == b"345"
            assert response.headers["X-Repo-Commit"] == repo.head().id
        request = urllib.request.Request(f"{hub.url}/user/raw/resolve/main/missing.txt", method="HEAD")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request)
        assert error.value.code == 404 and error.value.headers["X-Error-Code"] == "EntryNotFound"
        assert hub.unhandled == [] and hub.errors == []
