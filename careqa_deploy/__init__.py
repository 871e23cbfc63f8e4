"""The deployment layer: what a CareQA deployment on AWS is, before any CDK construct exists.

* ``config``: the typed deploy config (``config/deploy.*.yaml``), validated with the field named;
* ``models``: which model each endpoint deploys (the swap tool's record wins), the pin policy, the
  registries and buckets the SageMaker role may read;
* ``environment``: the service's and the ingestion Lambda's ``CAREQA_*`` settings;
* ``names``: names and counts the stacks and the cost estimate must agree on;
* ``instance_types``: what an instance family has (accelerators, local NVMe);
* ``cost`` and ``cli``: ``careqa cost``, the monthly estimate.

It imports the core (``careqa``, ``endpoints``) and is imported by the CDK app (``cdk/careqa_cdk``), never
the other way: nothing here imports ``aws_cdk``, so ``careqa cost`` runs without starting jsii.
"""
