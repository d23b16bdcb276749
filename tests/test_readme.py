"""The README's code snippets run as written (a broken quickstart is the first thing a user meets)."""

import re
from pathlib import Path

import torch


README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_a_quickstart():
    blocks = python_blocks()
    assert blocks and "generate(" in blocks[0], "the first python block of the README must be the quickstart"


def test_quickstart_runs_and_continuation_snippet_holds(tmp_path, monkeypatch):
    """Run the quickstart, then check the continuation snippet's claim on the model it built."""
    monkeypatch.chdir(tmp_path)  # the snippet saves to ./my-rnn
    namespace: dict = {}
    exec(compile(python_blocks()[0], "README.md", "exec"), namespace)
    model, tokens = namespace["model"], namespace["tokens"]
    assert tokens.shape[0] == 2 and tokens.shape[1] > 3
    assert (tmp_path / "my-rnn" / "model.safetensors").is_file()

    chunk1, chunk2 = torch.randint(3, 100, (2, 4)), torch.randint(3, 100, (2, 3))
    namespace.update(chunk1=chunk1, chunk2=chunk2)
    exec(compile(python_blocks()[1], "README.md", "exec"), namespace)
    full = model(torch.cat([chunk1, chunk2], dim=1)).logits[:, -3:]
    torch.testing.assert_close(namespace["out"].logits, full, atol=1e-5, rtol=0)
