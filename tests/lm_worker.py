"""Runs `hf_rnn.language_modeling.main` once per entry of a JSON spec, recording the rows every training batch holds.

Used by tests/test_language_modeling.py, in process (`recording_batches`) and under
`torchrun --nproc_per_node 2 tests/lm_worker.py spec.json` (one process group for every run of the spec, so that
torchrun starts once). The spec: `{"runs": [{"argv": [...], "record": "path/prefix"}, ...]}`; each process writes
`{record}_rank{process_index}.json`: a list of `{"segment": t, "streams": [...], "input_ids": [[...], ...]}`, one per
training batch (empty for blocks batching, which has no streams).
"""

import contextlib
import json
import sys

from hf_rnn import language_modeling


@contextlib.contextmanager
def recording_batches(records: list):
    """Make `main` use a StatefulLMTrainer that appends every training batch's rows to `records`."""
    original = language_modeling.StatefulLMTrainer

    class RecordingTrainer(original):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                records.append(
                    {
                        "segment": int(inputs["segment_index"][0]),
                        "streams": inputs["stream_index"].tolist(),
                        "input_ids": inputs["input_ids"].tolist(),
                    }
                )
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    language_modeling.StatefulLMTrainer = RecordingTrainer
    try:
        yield records
    finally:
        language_modeling.StatefulLMTrainer = original


def main(spec_path: str) -> int:
    import torch

    torch.set_num_threads(1)
    with open(spec_path, encoding="utf-8") as file:
        spec = json.load(file)
    for run in spec["runs"]:
        records = []
        with recording_batches(records):
            language_modeling.main(run["argv"])
        from torch import distributed

        rank = distributed.get_rank() if distributed.is_initialized() else 0
        with open(f"{run['record']}_rank{rank}.json", "w", encoding="utf-8") as file:
            json.dump(records, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
