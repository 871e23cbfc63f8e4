"""Instance types as values: one table says which families have accelerators and which have local NVMe."""

from __future__ import annotations

import pytest

from careqa_deploy.instance_types import InstanceType


@pytest.mark.parametrize(
    ("name", "accelerated", "local_nvme"),
    [
        ("ml.g5.2xlarge", True, True),  # GPU with instance storage: no volume key, no serverless
        ("ml.p3.2xlarge", True, False),  # GPU on EBS
        ("ml.inf2.xlarge", True, False),  # AWS Inferentia
        ("ml.c5d.xlarge", False, True),  # CPU with instance storage
        ("ml.c6i.xlarge", False, False),  # CPU on EBS: the embedding model's default
    ],
)
def test_the_family_decides_accelerators_and_local_storage(name: str, accelerated: bool, local_nvme: bool) -> None:
    instance = InstanceType.of(name)
    assert (instance.accelerated, instance.local_nvme) == (accelerated, local_nvme)


@pytest.mark.parametrize("name", ["g5.2xlarge", "ml.g5", "", "ml.g5xl.large"])
def test_a_name_that_is_not_a_known_sagemaker_instance_type_has_neither(name: str) -> None:
    instance = InstanceType.of(name)
    assert not instance.accelerated and not instance.local_nvme


def test_the_family_is_the_part_between_ml_and_the_size() -> None:
    assert InstanceType.of("ml.g6e.12xlarge").family == "g6e"
    assert InstanceType.of("db.g5.large").family == ""
