"""One error tree: every error the project raises on purpose is a CareQAError, and none of them knows HTTP."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from careqa.errors import CareQAError

PACKAGES = ("careqa", "careqa_deploy", "endpoints")
#: signals that never leave their module (careqa/errors.py says why they stay plain exceptions)
INTERNAL = {"careqa.alb_keys.KeyNotFoundError", "careqa.alb_keys.KeyUnavailableError", "careqa.knowledge._Reject"}


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
        for name in names:
            module = importlib.import_module(name)
            for attr, value in vars(module).items():
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                    found[f"{name}.{attr}"] = value
    return found


ERRORS = _error_classes()


def test_the_tree_was_found() -> None:
    assert {"endpoints.errors.ModelTimeoutError", "careqa.auth.AuthError", "careqa_deploy.cost.CostError"} <= set(
        ERRORS
    )
    assert "endpoints.sagemaker.errors.SwapFailed" in ERRORS


@pytest.mark.parametrize("name", sorted(set(ERRORS) - INTERNAL))
def test_every_error_descends_from_the_one_root(name: str) -> None:
    assert issubclass(ERRORS[name], CareQAError)


@pytest.mark.parametrize("name", sorted(set(ERRORS) - INTERNAL))
def test_no_error_carries_an_http_status_the_service_maps_them(name: str) -> None:
    assert not {"http_status", "retry_after_s", "status_code"} & set(dir(ERRORS[name]))
