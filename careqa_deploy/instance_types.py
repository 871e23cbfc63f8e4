"""SageMaker instance types as values: what a family has decides where a model may run and how it is encrypted.

One table, two questions: serverless inference cannot host a model that needs accelerators (the deploy
config refuses it), and SageMaker refuses a volume KMS key for instance types with local NVMe storage,
which it encrypts in hardware instead (the CDK construct leaves the key out).
"""

from __future__ import annotations

from dataclasses import dataclass

#: instance family → (has GPUs or AWS accelerators, has local NVMe instance storage)
_FAMILIES: dict[str, tuple[bool, bool]] = {
    "g4dn": (True, True),
    "g5": (True, True),
    "g6": (True, True),
    "g6e": (True, True),
    "p3": (True, False),
    "p3dn": (True, True),
    "p4d": (True, True),
    "p4de": (True, True),
    "p5": (True, True),
    "p5e": (True, True),
    "inf1": (True, False),
    "inf2": (True, False),
    "trn1": (True, False),
    "c5d": (False, True),
    "m5d": (False, True),
    "r5d": (False, True),
    "c6id": (False, True),
    "m6id": (False, True),
    "r6id": (False, True),
}


@dataclass(frozen=True)
class InstanceType:
    """A SageMaker instance type such as ``ml.g5.2xlarge``; families not in the table have neither feature."""

    name: str

    @classmethod
    def of(cls, name: str) -> InstanceType:
        return cls(name)

    @property
    def family(self) -> str:
        """``g5`` for ``ml.g5.2xlarge``; empty for a name that is not ``ml.<family>.<size>``."""
        prefix, _, rest = self.name.partition(".")
        family, dot, _size = rest.partition(".")
        return family if prefix == "ml" and dot else ""

    @property
    def accelerated(self) -> bool:
        """Whether it has GPUs or AWS accelerators (serverless inference has none)."""
        return _FAMILIES.get(self.family, (False, False))[0]

    @property
    def local_nvme(self) -> bool:
        """Whether its storage is instance-local NVMe (SageMaker then refuses a volume KMS key)."""
        return _FAMILIES.get(self.family, (False, False))[1]
