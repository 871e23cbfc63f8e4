"""A local run never loads the AWS SDK: boto3 is imported only where a SageMaker or AWS driver is chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LOCAL_RUN = """
import json, sys
from careqa.config import load_settings
from careqa.runtime import Runtime
import careqa.cli, careqa.service.app

runtime = Runtime(load_settings("config/local.yaml"))
transports = (runtime.embeddings.transport.name, runtime.chat_model.transport.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore"})
print(json.dumps({"transports": transports, "aws": loaded}))
"""


def _run(code: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("CAREQA_CONFIG_FILE", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_building_the_local_runtime_imports_neither_boto3_nor_botocore() -> None:
    found = _run(LOCAL_RUN)
    assert found["transports"] == ["local:huggingface-textembedding-all-MiniLM-L6-v2", "local:local-gemma-3-270m"]
    assert found["aws"] == []


def test_a_sagemaker_transport_is_what_brings_boto3_in() -> None:
    found = _run(
        LOCAL_RUN.replace(
            'runtime = Runtime(load_settings("config/local.yaml"))',
            "from endpoints.sagemaker.transport import SageMakerTransport\n"
            'runtime = Runtime(load_settings("config/local.yaml"))',
        )
    )
    assert "boto3" in found["aws"]
