"""CareQA's AWS CDK app: typed deployment config, reusable constructs and the stacks built from them.

Importing this package is cheap on purpose: ``deploy_config`` is plain pydantic (``careqa cost`` uses it
without loading the CDK); the stacks import ``aws_cdk`` and are imported by ``cdk/app.py``.
"""
