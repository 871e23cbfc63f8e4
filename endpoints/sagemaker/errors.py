"""The swap tool's errors; ``careqa models`` maps each to an exit code (careqa/cli_models.py)."""

from endpoints.errors import CareQAError


class ModelAdminError(CareQAError):
    """Base of the swap tool's errors; the CLI maps each subclass to an exit code."""

    code = "model_admin"


class SwapRefused(ModelAdminError):
    """The swap was not started: a precondition failed. Nothing was changed."""

    code = "swap_refused"


class EndpointNotFoundError(SwapRefused):
    code = "endpoint_not_found"


class SwapFailed(ModelAdminError):
    """The swap started but failed; the endpoint was rolled back to its previous EndpointConfig."""

    code = "swap_failed"


class RollbackFailed(SwapFailed):
    """The swap failed and the rollback did not complete: the endpoint needs a person."""

    code = "rollback_failed"


class DeploymentError(ModelAdminError):
    """The update did not leave the endpoint InService on the new EndpointConfig."""

    code = "deployment_failed"


class SmokeTestError(ModelAdminError):
    """The endpoint answered the smoke test with an error or a result the new model cannot produce."""

    code = "smoke_test_failed"
