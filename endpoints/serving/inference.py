"""SageMaker inference script for a CareQA-tuned sentence-embedding model (Hugging Face PyTorch inference image).

Packed as ``code/inference.py`` in the model artifact by ``careqa models package``; the image's inference
toolkit calls ``model_fn`` once and ``input_fn`` / ``predict_fn`` / ``output_fn`` per request. It speaks the
JumpStart text-embedding contract (``{"text_inputs": [...]}`` in, ``{"embedding": [[...], ...]}`` out), so the
service's codec is the same as for the base model.

Only transformers and torch are used (both are in the image): the model's own pooling settings
(``1_Pooling/config.json``: mean pooling for MiniLM) and ``2_Normalize`` are applied here, so the endpoint
needs no pip install at start-up and works with network isolation. The file is standalone on purpose: it
runs inside the container, where CareQA is not installed.
"""

import json
import os

import torch
from transformers import AutoModel, AutoTokenizer

JSON = "application/json"


def _pooling(model_dir):
    path = os.path.join(model_dir, "1_Pooling", "config.json")
    with open(path, encoding="utf-8") as src:
        config = json.load(src)
    # sentence-transformers 6 writes {"pooling_mode": "mean"}; older versions one flag per mode
    mode = config.get("pooling_mode")
    if mode in ("mean", "cls"):
        return mode
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise ValueError(f"unsupported pooling in {path}: {config}")


def _max_length(model_dir):
    """sentence-transformers' truncation length: in sentence_bert_config.json, or (6.x) the tokenizer's."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as src:
                value = json.load(src).get(key)
            if isinstance(value, int) and 0 < value < 100000:
                return value
    return 256


def model_fn(model_dir):
    model = AutoModel.from_pretrained(model_dir).eval()
    return {
        "tokenizer": AutoTokenizer.from_pretrained(model_dir),
        "model": model,
        "pooling": _pooling(model_dir),
        "normalize": os.path.isdir(os.path.join(model_dir, "2_Normalize")),
        "max_length": _max_length(model_dir),
    }


def input_fn(body, content_type):
    if content_type != JSON:
        raise ValueError(f"content type {content_type} is not supported; send {JSON}")
    payload = json.loads(body)
    texts = payload.get("text_inputs") if isinstance(payload, dict) else None
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("'text_inputs' must be a string or a list of strings")
    return texts


def embed(texts, loaded):
    """Sentence embeddings exactly as sentence-transformers computes them for this model."""
    if not texts:
        return []
    batch = loaded["tokenizer"](
        texts, padding=True, truncation=True, max_length=loaded["max_length"], return_tensors="pt"
    )
    with torch.no_grad():
        tokens = loaded["model"](**batch).last_hidden_state
    if loaded["pooling"] == "cls":
        vectors = tokens[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        vectors = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if loaded["normalize"]:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors.tolist()


def predict_fn(texts, loaded):
    return embed(texts, loaded)


def output_fn(vectors, accept):
    return json.dumps({"embedding": vectors}), JSON
