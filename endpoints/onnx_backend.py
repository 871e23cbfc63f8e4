"""Sentence embeddings on ONNX Runtime from a cached export (``endpoints.onnx_export``), without torch.

The exported graph already contains the model's pooling and normalisation, so this module only tokenizes
(with the model's own ``tokenizer.json``, truncated where sentence-transformers truncates) and runs the graph.

How the work is cut, measured on MedQuAD chunks on the 2-core build machine (benchmarks/bench_embeddings.py):
ONNX Runtime's attention materialises a batch x heads x length x length score tensor, which for 32 chunks of
256 tokens is 100 MB per layer and runs out of cache; one long text per run was twice as fast per CPU-second
as 32. So texts are sorted by token count and packed into runs of at most ``tokens_per_run`` tokens (long
chunks run alone, short questions together), and the runs are spread over ``threads`` worker threads, each
running the session single-threaded (``InferenceSession.run`` is thread-safe and releases the GIL).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from endpoints.onnx_export import OUTPUT_NAME, OnnxExport

#: measured best on MedQuAD chunks (one 256-token chunk per run; about 16 short questions per run)
DEFAULT_TOKENS_PER_RUN = 256


class OnnxEmbedder:
    """Encodes texts to the model's sentence embeddings (float32, one row per text, in input order)."""

    def __init__(self, export: OnnxExport, *, threads: int, tokens_per_run: int = DEFAULT_TOKENS_PER_RUN) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.export = export
        self.threads = max(1, threads)
        self.tokens_per_run = max(1, tokens_per_run)
        self._tokenizer = Tokenizer.from_file(str(export.tokenizer_path))
        self._pad_id = int((self._tokenizer.padding or {}).get("pad_id", 0))
        # tokenizer.json carries its own padding and truncation (fixed 128 here); sentence-transformers
        # overrides both, and so does this: truncate at the model's max_seq_length, pad nothing (runs pad).
        self._tokenizer.enable_truncation(max_length=export.max_seq_length)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(export.model_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ValueError(f"{export.model_path}: the graph lacks the inputs {sorted(missing)}")
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="onnx-embed")

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the model reads for each text (special tokens included, truncated, unpadded)."""
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The embeddings of ``texts``: an (n, dimension) float32 array."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        runs: list[list[int]] = []
        current: list[int] = []
        for i in order:  # ascending length: a run's last text is its longest, so its padded size is known
            if current and (len(current) + 1) * lengths[i] > self.tokens_per_run:
                runs.append(current)
                current = []
            current.append(i)
        runs.append(current)

        def run(indices: list[int]) -> None:
            out[indices] = self._run([encodings[i] for i in indices], lengths[indices[-1]])

        if self.threads == 1 or len(runs) == 1:
            for indices in runs:
                run(indices)
        else:
            for future in [self._pool.submit(run, indices) for indices in runs]:
                future.result()
        return out

    def _run(self, encodings: list[Any], width: int) -> np.ndarray:
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            types[row, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return self._session.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in self._inputs})[0]


__all__ = ["DEFAULT_TOKENS_PER_RUN", "OnnxEmbedder"]
