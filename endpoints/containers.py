"""Container families: the serving stacks a JumpStart model can run on, and how to tell them apart.

A payload format only works against the containers that speak it: JumpStart's Hugging Face inference
scripts read ``{"text_inputs"}``, TGI reads ``{"inputs", "parameters"}`` and answers with a list, LMI
reads the same request and answers with one object, TEI reads ``{"inputs"}`` and answers with bare
vectors. A config whose payload format and container disagree deploys fine and then fails on every
request, so the two are checked against each other when a config is loaded (``ModelConfig``) and
against JumpStart's own spec by ``careqa models verify``.
"""

from __future__ import annotations

from typing import Literal, get_args

ContainerFamily = Literal["hf-pytorch-inference", "tgi", "lmi", "tei"]
CONTAINER_FAMILIES: tuple[str, ...] = get_args(ContainerFamily)

#: ECR repository name (the part after ``.amazonaws.com/`` and before ``:``) → container family
_REPOSITORIES: dict[str, ContainerFamily] = {
    "huggingface-pytorch-inference": "hf-pytorch-inference",
    "huggingface-pytorch-tgi-inference": "tgi",
    "djl-inference": "lmi",
    "tei": "tei",
    "tei-cpu": "tei",
}


def image_repository(image_uri: str) -> str:
    """The repository of an ECR image URI: ``…amazonaws.com/tei:2.0.1-…`` → ``tei``."""
    path = image_uri.split("/", 1)[1] if "/" in image_uri else image_uri
    return path.split("@", 1)[0].split(":", 1)[0]


def family_of_image(image_uri: str) -> ContainerFamily | None:
    """The container family an image belongs to, or None for a repository CareQA has no codec for."""
    return _REPOSITORIES.get(image_repository(image_uri))
