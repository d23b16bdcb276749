"""Security: no network on import or local loading, remote code imports only torch/transformers, weights only as
safetensors, nothing unpickles a file."""

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

from conftest import tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM


PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "hf_rnn"
REMOTE_CODE = {"modeling_rnn.py", "configuration_rnn.py"}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import; relative imports as '.name'."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." + (node.module or "") if node.level else node.module.split(".")[0])
    return names


def test_import_and_local_loading_make_no_network_calls(tmp_path):
    model_dir = tmp_path / "model"
    RNNForCausalLM(tiny_config()).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    script = textwrap.dedent(
        f'''
        import socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network blocked by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        import hf_rnn
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(model_dir)!r})
        remote = AutoModelForCausalLM.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(model_dir)!r})
        model.generate(tokenizer("the cat", return_tensors="pt").input_ids, max_new_tokens=2)
        assert not attempts, attempts
        print("NO-NETWORK-OK")
        '''
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NO-NETWORK-OK" in result.stdout


def test_saved_folder_holds_only_safetensors_weights_and_own_modules(tmp_path):
    RNNForCausalLM(tiny_config()).save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))], files
    assert {name for name in files if name.endswith(".py")} == REMOTE_CODE
    for name in REMOTE_CODE:  # the copies are the package's own modules, unchanged
        assert (tmp_path / name).read_text() == (PACKAGE / name).read_text()


def test_remote_code_imports_only_torch_transformers_and_stdlib():
    # huggingface_hub (for `@strict` configs, as transformers' own) is a hard dependency of transformers
    allowed = {"torch", "transformers", "huggingface_hub", ".configuration_rnn", ".modeling_rnn"}
    allowed |= set(sys.stdlib_module_names)
    for name in REMOTE_CODE:
        extra = imported_modules((PACKAGE / name).read_text()) - allowed
        assert not extra, f"{name} imports {extra}: remote code may import only torch, transformers and each other"


def test_no_unsafe_unpickling_in_the_package():
    """Every torch.load passes weights_only=True; pickle is imported only for its exception classes (the converter
    catches UnpicklingError to refuse pickled objects), never to load; no pickle-based loader is imported."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        if {"cPickle", "dill", "joblib", "_pickle"} & imported_modules(path.read_text()):
            offenders.append(f"{path.name}: imports a pickle-based loader")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "pickle":
                offenders.append(f"{path.name}:{node.lineno}: from pickle import ...")
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "pickle":
                if node.attr not in ("UnpicklingError", "PicklingError", "PickleError"):
                    offenders.append(f"{path.name}:{node.lineno}: pickle.{node.attr}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "torch":
                safe = any(
                    kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                    for kw in node.keywords
                )
                if not safe:
                    offenders.append(f"{path.name}:{node.lineno}: torch.load without weights_only=True")
            if name in ("loads", "load", "Unpickler") and getattr(getattr(func, "value", None), "id", "") in (
                "pickle",
                "_pickle",
            ):
                offenders.append(f"{path.name}:{node.lineno}: pickle.{name}")
    assert not offenders, offenders
