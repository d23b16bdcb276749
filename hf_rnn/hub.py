"""Publishing a saved hf_rnn folder to the Hugging Face Hub (`hf-rnn push FOLDER REPO_ID`).

```python
from hf_rnn.hub import push_folder

result = push_folder("outputs/lm", "me/tiny-lstm-lm")   # creates the repo if needed
print(result.commit_url, result.changed)                 # changed is False when nothing differed from the Hub
```

A folder written by `save_pretrained` already holds everything a Hub repository needs; `push_folder` checks that,
fills in what an older or hand-made folder lacks, and uploads it with `HfApi.upload_folder`:

- it must hold `config.json` with `model_type` `hf_rnn` and safetensors weights (`model.safetensors`, or an index
  `model.safetensors.index.json` and all its shards): a `ValueError` says what is missing otherwise;
- `config.json` gets an `auto_map` entry for every hf_rnn head that lacks one (so `AutoModelFor...` with
  `trust_remote_code=True` loads any head from the repository), and the modeling source files
  (`modeling_rnn.py`, `configuration_rnn.py`) are added from the installed package when the folder lacks them;
- a causal language model without `generation_config.json` gets one derived from its config.

The folder itself is never modified: the upload is made from a staging folder of links to its files, in which only
the completed files are new. Files identical to those on the Hub are skipped by `huggingface_hub` (it compares
their hashes with the Hub's before committing), so pushing an unchanged folder again makes no new commit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .configuration_rnn import AUTO_MAP  # what config.json must list so every head loads via remote code


PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_FILES = ("configuration_rnn.py", "modeling_rnn.py")
DEFAULT_COMMIT_MESSAGE = "Upload hf_rnn model with hf-rnn push"
_SKIPPED_FOLDERS = {".git", ".cache", "__pycache__"}


@dataclass
class PushResult:
    repo_id: str
    revision: str
    commit_oid: str
    commit_url: str
    changed: bool  # False when every file was already on the Hub, unchanged: no commit was made
    added: list[str]  # files not in the folder that the push added (sources, generation_config.json...)


def check_folder(folder: str | os.PathLike) -> dict:
    """Check that `folder` holds a saved hf_rnn model with safetensors weights; return its config.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder: pass a folder written by save_pretrained")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(folder)!r} has no config.json: pass a folder written by save_pretrained")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or config.get("model_type") != "hf_rnn":
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise ValueError(
            f"{config_path} has model_type {model_type!r}, not 'hf_rnn': `hf-rnn push` publishes hf_rnn models only "
            "(use `hf upload` for other folders)"
        )
    _check_weights(folder)
    return config


def _check_weights(folder: Path) -> None:
    if (folder / "model.safetensors").is_file():
        return
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        try:
            shards = set(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"{index_path} is not a valid safetensors index (no weight_map)") from None
        missing = sorted(shard for shard in shards if not (folder / shard).is_file())
        if missing:
            raise ValueError(f"{str(folder)!r} lacks the safetensors shards {missing} listed in {index_path.name}")
        if not shards:
            raise ValueError(f"{index_path} lists no weights")
        return
    pickled = [name for name in ("pytorch_model.bin", "pytorch_model.bin.index.json") if (folder / name).is_file()]
    if pickled:
        raise ValueError(
            f"{str(folder)!r} has only pickled PyTorch weights ({pickled[0]}): hf-rnn publishes safetensors; load the "
            "model and save it again with save_pretrained (safetensors is its default)"
        )
    raise ValueError(
        f"{str(folder)!r} has no safetensors weights (model.safetensors): save the model with save_pretrained"
    )


def _completed_config(config: dict) -> dict | None:
    """config.json with every missing auto_map entry added, or None if nothing is missing."""
    auto_map = dict(config.get("auto_map") or {})
    missing = {key: value for key, value in AUTO_MAP.items() if key not in auto_map}
    if not missing:
        return None
    return {**config, "auto_map": {**auto_map, **missing}}


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source, target)
    except OSError:  # no symlinks (Windows without the privilege...): copy
        shutil.copy2(source, target)


def stage_folder(folder: str | os.PathLike, staging: str | os.PathLike) -> list[str]:
    """Fill the empty folder `staging` with what to upload for `folder` (links to its files plus the completed
    files); return the names of the files that were added or rewritten."""
    folder, staging = Path(folder).resolve(), Path(staging)
    config = check_folder(folder)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or _SKIPPED_FOLDERS.intersection(relative.parts[:-1]):
            continue
        _link_or_copy(path, staging / relative)

    added = []
    completed = _completed_config(config)
    if completed is not None:
        (staging / "config.json").unlink()
        # the layout save_pretrained writes: a second push of the same folder uploads identical bytes
        (staging / "config.json").write_text(json.dumps(completed, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        added.append("config.json (auto_map)")
    for name in SOURCE_FILES:
        if not (folder / name).is_file():
            shutil.copyfile(PACKAGE_DIR / name, staging / name)
            added.append(name)
    architectures = config.get("architectures") or []
    if "RNNForCausalLM" in architectures and not (folder / "generation_config.json").is_file():
        from transformers import GenerationConfig

        from .configuration_rnn import RNNConfig

        GenerationConfig.from_model_config(RNNConfig.from_dict(completed or config)).save_pretrained(staging)
        added.append("generation_config.json")
    return added


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Upload the saved hf_rnn model in `folder` to the Hub repository `repo_id` (created if missing, `private`
    when created so), on branch `revision` (created from main if missing; default main). See the module docstring
    for what is checked and completed."""
    from huggingface_hub import HfApi

    check_folder(folder)  # before any network call
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    branch = revision or "main"
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    sha_before = api.repo_info(repo_id, revision=branch).sha
    with tempfile.TemporaryDirectory(prefix="hf-rnn-push-") as staging:
        added = stage_folder(folder, staging)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=staging,
            revision=branch,
            commit_message=commit_message or DEFAULT_COMMIT_MESSAGE,
        )
    return PushResult(repo_id, branch, commit.oid, commit.commit_url, commit.oid != sha_before, added)


def push_training_output(output_dir: str | os.PathLike, training_args) -> PushResult:
    """`--push_to_hub` of the training recipes: publish the finished `output_dir` (weights, config, modeling
    source, tokenizer, generation config and the recipe's model card) to `hub_model_id` (default: the folder's
    name). Trainer's own final push is skipped by the recipes: it would upload Trainer's generic card instead."""
    repo_id = training_args.hub_model_id or Path(output_dir).name
    return push_folder(
        output_dir,
        repo_id,
        private=training_args.hub_private_repo,
        revision=training_args.hub_revision,
        commit_message="End of training",
        token=training_args.hub_token,
    )
