"""`hf-rnn generate`: prints what model.generate + decode give, streams it token by token while generating, reads the
prompt from stdin, and refuses bad options and non-language models with a one-line error."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import randomize_biases, tiny_config, tiny_tokenizer
from hf_rnn import RNNForCausalLM, RNNForSequenceClassification, cli


PROMPT = "the cat sat on"


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny LSTM language model with trained-looking biases, saved with the tiny word-level tokenizer.

    Large weights and this seed make greedy decoding produce several different words and no EOS in 5 steps.
    """
    torch.manual_seed(4)
    model = randomize_biases(RNNForCausalLM(tiny_config(initializer_range=1.0)).eval(), seed=4, scale=1.0)
    folder = tmp_path_factory.mktemp("lm")
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def expected_text(folder: Path, prompt: str, **generate_options) -> str:
    model = RNNForCausalLM.from_pretrained(folder).eval()
    tokenizer = tiny_tokenizer()
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output_ids = model.generate(**inputs, pad_token_id=tokenizer.pad_token_id, **generate_options)
    assert output_ids.shape[1] > inputs["input_ids"].shape[1]
    return tokenizer.decode(output_ids[0], skip_special_tokens=True)


def hf_rnn_command() -> list[str]:
    """The installed `hf-rnn` console script next to this Python, else the module."""
    script = Path(sys.executable).parent / "hf-rnn"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hf_rnn.cli"]


def test_subprocess_prints_the_greedy_generation(lm_dir, hf_env):
    result = subprocess.run(
        [*hf_rnn_command(), "generate", str(lm_dir), PROMPT, "--max-new-tokens", "5", "--greedy"],
        capture_output=True,
        text=True,
        env={**hf_env, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = expected_text(lm_dir, PROMPT, max_new_tokens=5, do_sample=False)
    assert result.stdout == expected + "\n"
    assert expected.startswith(PROMPT) and len(expected.split()) == len(PROMPT.split()) + 5


class RecordingStdout(io.StringIO):
    """Records each write, interleaved with the model's forward calls in the shared `events` list."""

    def __init__(self, events: list):
        super().__init__()
        self.events = events

    def write(self, text):
        if text:
            self.events.append(("write", text))
        return super().write(text)


def test_tokens_are_streamed_while_generating(lm_dir, monkeypatch):
    events = []
    original_forward = RNNForCausalLM.forward

    def recording_forward(self, *args, **kwargs):
        events.append(("forward", None))
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(RNNForCausalLM, "forward", recording_forward)
    monkeypatch.setattr(sys, "stdout", RecordingStdout(events))
    status = cli.main(["generate", str(lm_dir), PROMPT, "--max-new-tokens", "5", "--greedy"])
    output = sys.stdout.getvalue()
    monkeypatch.undo()
    assert status == 0

    assert output == expected_text(lm_dir, PROMPT, max_new_tokens=5, do_sample=False) + "\n"
    kinds = [kind for kind, _ in events]
    # the prompt is printed first; then each new word is written right after the forward pass that produced it,
    # before the next forward pass starts: 5 forward passes, each followed by its own write
    assert kinds[0] == "write" and events[0][1].strip() == PROMPT
    steps = kinds[1:]
    assert steps.count("forward") == 5
    for i, kind in enumerate(steps):
        if kind == "forward":
            assert steps[i + 1] == "write", steps
    words = [text for kind, text in events[1:] if kind == "write" and text.strip()]
    assert len(words) == 5 and all(len(word.split()) == 1 for word in words)


def test_prompt_from_stdin_sampling_and_beam_search(lm_dir, monkeypatch, capsys):
    # stdin, one final newline dropped; a seed makes sampling reproducible
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPT + "\n"))
    options = [
        "--max-new-tokens",
        "6",
        "--do-sample",
        "--top-k",
        "10",
        "--top-p",
        "0.9",
        "--temperature",
        "0.7",
        "--repetition-penalty",
        "1.2",
        "--seed",
        "3",
    ]
    assert cli.main(["generate", str(lm_dir), *options]) == 0
    first = capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(PROMPT))
    assert cli.main(["generate", str(lm_dir), "-", *options]) == 0
    assert capsys.readouterr().out == first
    torch.manual_seed(3)
    assert (
        first
        == expected_text(
            lm_dir,
            PROMPT,
            max_new_tokens=6,
            do_sample=True,
            top_k=10,
            top_p=0.9,
            temperature=0.7,
            repetition_penalty=1.2,
        )
        + "\n"
    )

    # beam search cannot stream: the best beam is printed at the end, the same as model.generate
    assert cli.main(["generate", str(lm_dir), PROMPT, "--max-new-tokens", "4", "--num-beams", "3"]) == 0
    assert (
        capsys.readouterr().out == expected_text(lm_dir, PROMPT, max_new_tokens=4, num_beams=3, do_sample=False) + "\n"
    )


def test_bad_options_and_models_give_one_line_errors(lm_dir, tmp_path, capsys):
    for option, value in (("--top-p", "1.5"), ("--max-new-tokens", "0"), ("--temperature", "0"), ("--num-beams", "0")):
        assert cli.main(["generate", str(lm_dir), PROMPT, option, value]) == 2
        error = capsys.readouterr().err
        assert error.startswith("hf-rnn generate: error: " + option) and error.count("\n") == 1

    classifier_dir = tmp_path / "classifier"
    RNNForSequenceClassification(tiny_config()).save_pretrained(classifier_dir)
    tiny_tokenizer().save_pretrained(classifier_dir)
    assert cli.main(["generate", str(classifier_dir), PROMPT]) == 2
    assert "RNNForSequenceClassification, not a language model" in capsys.readouterr().err

    assert cli.main(["generate", str(tmp_path / "missing"), PROMPT]) == 2
    assert capsys.readouterr().err.startswith("hf-rnn generate: error:")
