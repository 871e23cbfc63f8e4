"""Every pinned container image of every deployable config is a published image, per region.

The SageMaker SDK ships the list of published Deep Learning Container images (its bundled
``image_uri_config/*.json``); ``sagemaker.core.image_uris.retrieve`` reads it with no network. Each
config's ``container`` block (framework, version, base framework) plus its default instance type must
resolve, in every region it pins, to exactly the pinned URI: a typo, a tag the SDK does not know, or an
image of another version than the container block claims fails here, not forty minutes into a deploy.
"""

from __future__ import annotations

import pytest
from sagemaker.core import image_uris

from endpoints.config import ModelConfig, available_models, load_model_config

DEPLOYABLE = [c for c in map(load_model_config, available_models()) if c.deployable]
PINS = [(c, region) for c in DEPLOYABLE for region in sorted(c.image_uris)]


def published_image(config: ModelConfig, region: str) -> str:
    """The image the SDK's bundled config lists for ``config``'s container in ``region``."""
    assert config.container is not None
    extra = {"base_framework_version": config.container.base_framework_version}
    return image_uris.retrieve(
        config.container.framework,
        region,
        version=config.container.version,
        image_scope="inference",
        instance_type=config.default_instance_type,
        **{k: v for k, v in extra.items() if v},
    )


def test_every_deployable_config_is_covered():
    assert {c.name for c in DEPLOYABLE} == {c.name for c, _ in PINS}
    assert len(DEPLOYABLE) >= 6


@pytest.mark.parametrize(("config", "region"), PINS, ids=[f"{c.name}-{r}" for c, r in PINS])
def test_each_pinned_image_is_the_published_image_of_its_container(config: ModelConfig, region: str):
    assert config.image_uris[region] == published_image(config, region)


def test_a_tag_without_its_release_suffix_is_not_the_published_image():
    """The TGI 2.4.0 tag these configs pinned before carried no ``-v2.2``: the SDK knows it with the suffix."""
    mistral = load_model_config("huggingface-llm-mistral-7b-instruct")
    stale = mistral.image_uris["us-east-1"].removesuffix("-v2.2")
    assert stale != published_image(mistral, "us-east-1")
    assert published_image(mistral, "us-east-1").endswith("-v2.2")


def test_a_container_version_the_sdk_does_not_list_is_refused():
    flan = load_model_config("huggingface-text2text-flan-t5-xl")
    assert flan.container is not None
    unknown = flan.model_copy(update={"container": flan.container.model_copy(update={"version": "9.9.9"})})
    with pytest.raises(ValueError, match="9.9.9"):
        published_image(unknown, "us-east-1")
