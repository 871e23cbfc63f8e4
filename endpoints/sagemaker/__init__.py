"""Everything that talks to SageMaker: the runtime transport and the control plane of ``careqa models``.

Import the module you need; this package imports nothing, so the service loads only the transport and
the live-model record, and the CDK construct only the request builders.

* ``transport``: ``SageMakerTransport``, InvokeEndpoint with retries (the data plane).
* ``builders``: pure functions that build CreateModel / CreateEndpointConfig requests and the tags.
* ``record``: the live-model record in SSM (``ActiveModel``, ``active_model``), which the service, the
  ingestion Lambda and ``cdk/record_active_models.py`` read so that a swap needs no redeploy.
* ``policy``: ``DeploymentOptions``, how UpdateEndpoint shifts traffic and when it rolls back.
* ``plan``, ``execute``, ``prune``: the swap: check and compute (``--dry-run``), deploy, smoke-test, record
  or roll back, delete old configs.
* ``listing``: the endpoints CareQA manages and what runs on each.
* ``errors``: the swap tool's errors.
"""
