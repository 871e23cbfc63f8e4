"""CareQA's AWS CDK app: reusable constructs and the stacks built from them.

The deploy config, the stack names and the cost model are the deployment layer (``careqa_deploy``), which
this package imports and which never imports it; the stacks import ``aws_cdk`` and are built by ``cdk/app.py``.
"""
