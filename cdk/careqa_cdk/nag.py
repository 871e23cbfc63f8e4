"""cdk-nag packs and the one way this app suppresses a finding: with a written reason.

Every suppression goes through ``suppress``, which refuses a reason shorter than a sentence, so the
reason sits next to the construct it excuses and ends up in the template's metadata, where the tests
check that each one has it.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aspects, Stack
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPackSuppression, NagSuppressions
from constructs import IConstruct

#: a reason must say why, not just restate the rule
MIN_REASON_CHARS = 40
#: why the app's roles keep their statements inline (HIPAA.Security-IAMNoInlinePolicy)
INLINE_POLICY_REASON = (
    "Each statement is specific to this one role and is written beside it; a customer managed "
    "policy would add a second resource to version with no reuse, and the CDK's own grants to "
    "the role are inline by design."
)


def add_nag_packs(scope: IConstruct, *, reports: bool = True) -> None:
    """Run the AWS Solutions and HIPAA Security packs on every construct under ``scope``."""
    Aspects.of(scope).add(AwsSolutionsChecks(verbose=True, reports=reports))
    Aspects.of(scope).add(HIPAASecurityChecks(verbose=True, reports=reports))


def _suppression(rule: str, reason: str, applies_to: Sequence[str] | None) -> NagPackSuppression:
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"suppressing {rule}: give a reason of at least {MIN_REASON_CHARS} characters, got {reason!r}")
    return NagPackSuppression(id=rule, reason=reason, applies_to=list(applies_to) if applies_to else None)


def suppress(
    construct: IConstruct | Sequence[IConstruct],
    rules: dict[str, str],
    *,
    applies_to: Sequence[str] | None = None,
    children: bool = False,
) -> None:
    """Suppress each ``rule → reason`` on ``construct`` (and its children when ``children``)."""
    NagSuppressions.add_resource_suppressions(
        construct,
        [_suppression(rule, reason, applies_to) for rule, reason in rules.items()],
        apply_to_children=children,
    )


def suppress_path(stack: Stack, path: str, rules: dict[str, str], *, children: bool = True) -> None:
    """Suppress findings on a construct the CDK creates on its own (a singleton custom-resource provider)."""
    NagSuppressions.add_resource_suppressions_by_path(
        stack, path, [_suppression(rule, reason, None) for rule, reason in rules.items()], apply_to_children=children
    )
