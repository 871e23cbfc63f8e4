"""CareQA's tests, as a regular package.

``smdebug-rulesconfig`` (a dependency of ``sagemaker-core``) installs a top-level ``tests`` package into
site-packages; a regular package there would win over this folder as a namespace package, and
``from tests.conftest import ...`` would fail. With this file, the repository's ``tests`` comes first.
"""
