"""``careqa cost``: an itemised monthly estimate of a deploy config, cheap and production side by side.

The estimate is arithmetic on three inputs: the deploy config (sizes, counts and the ``usage``
assumptions), the list prices in ``cdk/prices.yaml`` (with their date and region), and the shape of the
stacks (how many keys, secrets, interface endpoints and alarms they create). It is a planning aid: the
prices are list prices to verify, and usage-based lines are only as good as the ``usage`` section.

The shape of the stacks comes from ``careqa_deploy.names``, which the CDK app builds them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from careqa.config import StrictModel
from careqa.errors import CareQAError
from careqa_deploy.config import PROFILES, DeployConfig, DeployConfigError, parse_deploy_config
from careqa_deploy.names import INTERFACE_ENDPOINTS, KEY_FUNCTION_MEMORY_MB, KMS_KEYS, SECRETS

CATEGORIES = ("models", "search", "service", "network", "data", "observability")
GB = 1024**3
#: alarms the monitoring stack creates (4 endpoint, 2 load balancer, 1 dead-letter, 3 OpenSearch)
MONITORING_ALARMS = 10
#: Application Auto Scaling creates two alarms for each target-tracking policy
ALARMS_PER_TARGET_TRACKING = 2
#: rough sizes, for the request- and storage-based lines
BYTES_PER_QUESTION = 12_000  # question, passages and answer through the endpoints
BYTES_PER_FEEDBACK_ITEM = 6_000  # an answer as served, stored for its rating
EMBEDDING_CALLS_PER_FILE = 2
INGEST_SECONDS_PER_FILE = 20
#: key Lambda: each task fetches a load balancer key once per key id; a new id a day is a generous bound
KEY_FETCHES_PER_TASK_PER_MONTH = 31
KEY_FETCH_SECONDS = 2  # a cold start and one small HTTPS GET


class CostError(CareQAError):
    code = "cost_error"


class SageMakerPrices(StrictModel):
    instance_hour: dict[str, float]
    serverless_gb_second: float
    data_processed_gb: float


class OpenSearchPrices(StrictModel):
    instance_hour: dict[str, float]
    gp3_gb_month: float


class Prices(StrictModel):
    """``cdk/prices.yaml``: public list prices for one region on one date."""

    as_of: str
    region: str
    currency: str = "USD"
    hours_per_month: float = Field(default=730, gt=0)
    sagemaker: SageMakerPrices
    opensearch: OpenSearchPrices
    fargate: dict[str, float]
    vpc: dict[str, float]
    alb: dict[str, float]
    kms: dict[str, float]
    dynamodb: dict[str, float]
    s3: dict[str, float]
    cloudwatch: dict[str, float]
    secrets_manager: dict[str, float]
    # Lambda's section is named "lambda" in the file.
    lambda_: dict[str, float] = Field(alias="lambda")
    sqs: dict[str, float]

    def sagemaker_hour(self, instance_type: str) -> float:
        return _lookup(self.sagemaker.instance_hour, instance_type, "sagemaker.instance_hour", self.region)

    def opensearch_hour(self, instance_type: str) -> float:
        return _lookup(self.opensearch.instance_hour, instance_type, "opensearch.instance_hour", self.region)


def _lookup(table: dict[str, float], key: str, where: str, region: str) -> float:
    try:
        return table[key]
    except KeyError:
        raise CostError(f"prices: no {where} price for {key} ({region}); add it to cdk/prices.yaml") from None


def load_prices(path: Path) -> Prices:
    """Read and validate the price file."""
    try:
        return Prices.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CostError(f"prices: {path} does not exist") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise CostError(f"prices: {path} is invalid: {exc}") from None


@dataclass(frozen=True)
class LineItem:
    """One cost line with its monthly amount and how it was computed, per profile."""

    category: str
    name: str
    monthly: dict[str, float]
    basis: dict[str, str]


@dataclass
class Estimate:
    region: str
    currency: str
    prices_as_of: str
    prices_region: str
    items: list[LineItem] = field(default_factory=list)
    #: profiles the deploy config cannot be deployed under, with the reason
    unavailable: dict[str, str] = field(default_factory=dict)

    def total(self, profile: str) -> float:
        return sum(item.monthly.get(profile, 0.0) for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "currency": self.currency,
            "prices_as_of": self.prices_as_of,
            "prices_region": self.prices_region,
            "unavailable": self.unavailable,
            "items": [
                {"category": i.category, "name": i.name, "monthly": i.monthly, "basis": i.basis} for i in self.items
            ],
            "totals": {p: round(self.total(p), 2) for p in PROFILES if p not in self.unavailable},
        }


def _profile_lines(config: DeployConfig, prices: Prices, profile: str) -> list[tuple[str, str, float, str]]:
    """(category, name, USD per month, basis) for one profile."""
    hours = prices.hours_per_month
    usage = config.usage
    cheap = profile == "cheap"
    lines: list[tuple[str, str, float, str]] = []

    def add(category: str, name: str, monthly: float, basis: str) -> None:
        lines.append((category, name, monthly, basis))

    # Models
    embedding_calls = (
        usage.questions_per_month * usage.embedding_calls_per_question
        + usage.ingest_files_per_month * EMBEDDING_CALLS_PER_FILE
    )
    if cheap:
        gb = config.embedding.serverless.memory_mb / 1024
        gb_seconds = embedding_calls * usage.embedding_seconds_per_call * gb
        add(
            "models",
            "embedding endpoint",
            gb_seconds * prices.sagemaker.serverless_gb_second,
            f"serverless: {embedding_calls:,} calls x {usage.embedding_seconds_per_call}s x {gb:g} GB = "
            f"{gb_seconds:,.0f} GB-s",
        )
        llm_type = config.llm_instance_type("cheap")
        active = config.llm.scale_to_zero.active_hours_per_month
        add(
            "models",
            "LLM endpoint",
            active * prices.sagemaker_hour(llm_type),
            f"scale to zero: {active:g} active h x 1 {llm_type}",
        )
    else:
        emb_type, emb_n = config.embedding_instance_type(), config.embedding.production.min_instances
        add(
            "models",
            "embedding endpoint",
            emb_n * hours * prices.sagemaker_hour(emb_type),
            f"instances: {emb_n} x {emb_type} x {hours:g} h",
        )
        llm_type, llm_n = config.llm_instance_type("production"), config.llm.production.min_instances
        add(
            "models",
            "LLM endpoint",
            llm_n * hours * prices.sagemaker_hour(llm_type),
            f"instances: {llm_n} x {llm_type} x {hours:g} h (minimum capacity)",
        )
    data_gb = usage.questions_per_month * BYTES_PER_QUESTION / GB
    add(
        "models",
        "endpoint data processed",
        data_gb * prices.sagemaker.data_processed_gb,
        f"{data_gb:.2f} GB in and out",
    )

    # OpenSearch
    size = config.opensearch.cheap if cheap else config.opensearch.production
    node_hour = prices.opensearch_hour(size.instance_type)
    add(
        "search",
        "OpenSearch data nodes",
        size.data_nodes * hours * node_hour,
        f"{size.data_nodes} x {size.instance_type} x {hours:g} h",
    )
    if size.dedicated_masters and size.dedicated_master_type:
        add(
            "search",
            "OpenSearch dedicated masters",
            size.dedicated_masters * hours * prices.opensearch_hour(size.dedicated_master_type),
            f"{size.dedicated_masters} x {size.dedicated_master_type} x {hours:g} h",
        )
    storage = size.data_nodes * size.volume_gb
    add(
        "search",
        "OpenSearch EBS storage (gp3)",
        storage * prices.opensearch.gp3_gb_month,
        f"{size.data_nodes} x {size.volume_gb} GB",
    )

    # Service
    tasks = config.fargate.cheap if cheap else config.fargate.production
    vcpu, mem_gb = tasks.cpu / 1024, tasks.memory_mib / 1024
    per_hour = vcpu * prices.fargate["vcpu_hour"] + mem_gb * prices.fargate["gb_hour"]
    add(
        "service",
        "Fargate tasks",
        tasks.min_tasks * hours * per_hour,
        f"{tasks.min_tasks} x ({vcpu:g} vCPU + {mem_gb:g} GB) x {hours:g} h (minimum tasks)",
    )
    add(
        "service",
        "Application Load Balancer",
        hours * (prices.alb["hour"] + usage.alb_average_lcu * prices.alb["lcu_hour"]),
        f"{hours:g} h + {usage.alb_average_lcu:g} LCU average",
    )
    key_fetches = tasks.max_tasks * KEY_FETCHES_PER_TASK_PER_MONTH
    key_gb_s = key_fetches * KEY_FETCH_SECONDS * KEY_FUNCTION_MEMORY_MB / 1024
    add(
        "service",
        "load balancer key Lambda",
        key_fetches / 1e6 * prices.lambda_["request_million"] + key_gb_s * prices.lambda_["gb_second"],
        f"{key_fetches} fetches (up to {tasks.max_tasks} tasks x a new key a day) x {KEY_FETCH_SECONDS} s x "
        f"{KEY_FUNCTION_MEMORY_MB} MB; its interface endpoint is counted under network",
    )

    # Network
    azs = 2
    endpoints = len(INTERFACE_ENDPOINTS)
    add(
        "network",
        "interface VPC endpoints",
        endpoints * azs * hours * prices.vpc["interface_endpoint_az_hour"]
        + usage.endpoint_data_gb_per_month * prices.vpc["interface_endpoint_data_gb"],
        f"{endpoints} endpoints x {azs} AZs x {hours:g} h + {usage.endpoint_data_gb_per_month:g} GB",
    )
    nats = 0 if config.network.alb_egress == "none" else (1 if cheap else azs)
    if nats:
        add(
            "network",
            "NAT gateways (load balancer to IdP)",
            nats * hours * prices.vpc["nat_gateway_hour"] + usage.nat_data_gb_per_month * prices.vpc["nat_data_gb"],
            f"{nats} x {hours:g} h + {usage.nat_data_gb_per_month:g} GB",
        )

    # Data
    kms_requests = (usage.questions_per_month * 4 + usage.ingest_files_per_month * 10) / 10_000
    add(
        "data",
        "KMS keys and requests",
        len(KMS_KEYS) * prices.kms["key_month"] + kms_requests * prices.kms["requests_per_10k"],
        f"{len(KMS_KEYS)} keys + {kms_requests * 10_000:,.0f} requests",
    )
    writes = usage.questions_per_month * 2  # the answer as served, then its rating
    reads = usage.questions_per_month
    stored_gb = usage.questions_per_month * BYTES_PER_FEEDBACK_ITEM / GB * 12  # a year of answers
    add(
        "data",
        "DynamoDB feedback (on demand, PITR)",
        writes / 1e6 * prices.dynamodb["write_request_million"]
        + reads / 1e6 * prices.dynamodb["read_request_million"]
        + stored_gb * (prices.dynamodb["storage_gb_month"] + prices.dynamodb["pitr_gb_month"]),
        f"{writes:,} writes, {reads:,} reads, {stored_gb:.2f} GB",
    )
    s3_gb = usage.kb_storage_gb + usage.export_storage_gb
    add(
        "data",
        "S3 (knowledge bases, exports, access logs)",
        s3_gb * prices.s3["standard_gb_month"]
        + usage.ingest_files_per_month / 1000 * prices.s3["put_per_1000"]
        + (usage.ingest_files_per_month + usage.questions_per_month) / 1000 * prices.s3["get_per_1000"],
        f"{s3_gb:g} GB + {usage.ingest_files_per_month:,} uploads",
    )
    add("data", "Secrets Manager", len(SECRETS) * prices.secrets_manager["secret_month"], f"{len(SECRETS)} secrets")
    lambda_gb_s = usage.ingest_files_per_month * INGEST_SECONDS_PER_FILE * config.ingestion.memory_mb / 1024
    add(
        "data",
        "ingestion Lambda and queue",
        lambda_gb_s * prices.lambda_["gb_second"]
        + usage.ingest_files_per_month * 4 / 1e6 * prices.sqs["request_million"],
        f"{lambda_gb_s:,.0f} GB-s",
    )

    # Observability
    tracking = (1 if cheap else 2) + 2  # endpoint or copy policies, plus the service's CPU and request policies
    alarms = MONITORING_ALARMS + (1 if cheap else 0) + ALARMS_PER_TARGET_TRACKING * tracking
    retention_months = min(config.log_retention_days / 30, 12)
    add(
        "observability",
        "CloudWatch logs, alarms, dashboard",
        usage.log_ingest_gb_per_month * prices.cloudwatch["logs_ingest_gb"]
        + usage.log_ingest_gb_per_month * retention_months * prices.cloudwatch["logs_storage_gb_month"]
        + alarms * prices.cloudwatch["alarm_month"]
        + prices.cloudwatch["dashboard_month"],
        f"{usage.log_ingest_gb_per_month:g} GB/month, {alarms} alarms, 1 dashboard",
    )
    return lines


def estimate(config: DeployConfig, prices: Prices) -> Estimate:
    """Both profiles' monthly costs for ``config``, line by line."""
    result = Estimate(
        region=config.env.region, currency=prices.currency, prices_as_of=prices.as_of, prices_region=prices.region
    )
    per_profile: dict[str, list[tuple[str, str, float, str]]] = {}
    for profile in PROFILES:
        try:
            variant = config if config.profile == profile else config.with_profile(profile)  # type: ignore[arg-type]
        except (DeployConfigError, ValidationError) as exc:
            result.unavailable[profile] = str(exc).splitlines()[0]
            continue
        per_profile[profile] = _profile_lines(variant, prices, profile)
    keys: list[tuple[str, str]] = []
    for lines in per_profile.values():
        for category, name, _, _ in lines:
            if (category, name) not in keys:
                keys.append((category, name))
    keys.sort(key=lambda key: CATEGORIES.index(key[0]))  # stable: first-seen order within a category
    for category, name in keys:
        monthly: dict[str, float] = {}
        basis: dict[str, str] = {}
        for profile, lines in per_profile.items():
            for c, n, amount, why in lines:
                if (c, n) == (category, name):
                    monthly[profile] = round(amount, 2)
                    basis[profile] = why
        result.items.append(LineItem(category, name, monthly, basis))
    return result


def render(result: Estimate) -> str:
    """A plain-text table: one line per item, a column per profile, then totals and the caveats."""
    name_width = max([len(i.name) for i in result.items] + [20])
    header = f"{'item':<{name_width}}  {'cheap':>12}  {'production':>12}"
    out = [
        f"CareQA monthly estimate for {result.region} ({result.currency}, list prices as of "
        f"{result.prices_as_of} for {result.prices_region})",
        "",
        header,
        "-" * len(header),
    ]
    category = None
    for item in result.items:
        if item.category != category:
            category = item.category
            out.append(f"[{category}]")
        cells = [f"{item.monthly[p]:>12,.2f}" if p in item.monthly else f"{'-':>12}" for p in PROFILES]
        out.append(f"{item.name:<{name_width}}  {cells[0]}  {cells[1]}")
    out.append("-" * len(header))
    totals = [f"{result.total(p):>12,.2f}" if p not in result.unavailable else f"{'n/a':>12}" for p in PROFILES]
    out.append(f"{'total per month':<{name_width}}  {totals[0]}  {totals[1]}")
    for profile, reason in result.unavailable.items():
        out.append(f"\n{profile}: not deployable with this config: {reason}")
    if result.region != result.prices_region:
        out.append(f"\nwarning: prices are for {result.prices_region}, the config deploys to {result.region}")
    out.append(
        "\nList prices to verify (AWS pricing pages): no free tier, Savings Plans, support or tax. Usage-based "
        "lines follow the config's `usage` section; `careqa cost --json` shows how each line was computed."
    )
    return "\n".join(out)


def per_1000_answers(
    config: DeployConfig, prices: Prices, profile: str, *, llm: str | None, calls_llm: bool
) -> tuple[float, str]:
    """What 1,000 answers cost under ``profile``: the month's estimate over the month's questions.

    ``calls_llm=False`` (the reader alone) drops the LLM endpoint, which such a deployment does not need.
    ``llm`` prices another deployable LLM config in the deploy config's place (a model bake-off).
    """
    if calls_llm and llm and llm != config.llm.config:
        raw = config.model_dump(exclude_none=True)
        # priced only, never deployed: a gated model's licence question does not arise, and the model's own
        # default instance type replaces any the deploy config pinned for its LLM
        raw["llm"] = {**raw["llm"], "config": llm, "accept_eula": True}
        for section in ("scale_to_zero", "production"):
            raw["llm"].get(section, {}).pop("instance_type", None)
        config = parse_deploy_config(raw, source=f"deploy config with {llm}")
    result = estimate(config, prices)
    if profile in result.unavailable:
        raise CostError(f"profile {profile} is unavailable for this deploy config: {result.unavailable[profile]}")
    total = sum(item.monthly.get(profile, 0.0) for item in result.items if calls_llm or item.name != "LLM endpoint")
    questions = config.usage.questions_per_month
    llm_part = f"LLM {config.llm.config}" if calls_llm else "no LLM endpoint"
    basis = f"{profile} profile, {llm_part}, {questions:,} questions/month, prices of {result.prices_as_of}"
    return total / questions * 1000, basis
