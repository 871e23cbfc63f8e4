"""MonitoringStack: one dashboard and the alarms that page someone, through a KMS-encrypted SNS topic.

Alarms (thresholds from ``alarms`` in the deploy config):

* each endpoint's p95 ``ModelLatency`` and ``Invocation5XXErrors``;
* the load balancer's 5xx count (its own and the targets') and p95 ``TargetResponseTime``;
* the ingestion dead-letter queue's ``ApproximateNumberOfMessagesVisible`` (a file needs a person);
* OpenSearch ``ClusterStatus.red``, ``ClusterStatus.yellow`` and ``FreeStorageSpace``.

Missing data is "not breaching": a scaled-to-zero endpoint and a quiet night are not incidents.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from careqa_cdk.jumpstart_endpoint import JumpStartEndpoint
from careqa_deploy.config import AlarmsConfig

_GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD


@dataclass(frozen=True)
class MonitoringProps:
    app_name: str
    alarms: AlarmsConfig
    embedding: JumpStartEndpoint
    llm: JumpStartEndpoint
    load_balancer: elbv2.IApplicationLoadBalancer
    dead_letters: sqs.IQueue
    domain_name: str


class MonitoringStack(Stack):
    """Dashboard, alarms and the alarm topic."""

    def __init__(self, scope: Construct, construct_id: str, *, props: MonitoringProps, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        thresholds = props.alarms
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
            description=f"{props.app_name}: alarm notifications",
        )
        # CloudWatch publishes alarm notifications to the encrypted topic with this key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.topic = sns.Topic(
            self, "Alarms", master_key=key, enforce_ssl=True, display_name=f"{props.app_name} alarms"
        )
        if thresholds.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(thresholds.email))
        action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(
            construct_id: str,
            metric: cloudwatch.IMetric,
            threshold: float,
            description: str,
            comparison: cloudwatch.ComparisonOperator = _GTE,
            periods: int = 1,
        ) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=comparison,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms.append(created)
            return created

        endpoints = {
            "Embedding": (props.embedding, thresholds.embedding_latency_p95_ms),
            "Llm": (props.llm, thresholds.llm_latency_p95_ms),
        }
        for name, (endpoint, latency_ms) in endpoints.items():
            alarm(
                f"{name}Latency",
                endpoint.metric_model_latency_p95(),
                latency_ms * 1000,
                f"{endpoint.endpoint_name}: p95 model latency above {latency_ms} ms for 15 minutes",
                _GT,
                periods=3,
            )
            alarm(
                f"{name}5xx",
                endpoint.metric_5xx(),
                thresholds.endpoint_5xx_per_5min,
                f"{endpoint.endpoint_name}: {thresholds.endpoint_5xx_per_5min}+ invocation 5xx errors in 5 minutes",
            )

        alb = props.load_balancer.metrics
        five = Duration.minutes(5)
        alb_5xx = cloudwatch.MathExpression(
            expression="elb + targets",
            label="ALB and target 5xx",
            period=five,
            using_metrics={
                "elb": alb.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five, statistic="Sum"),
                "targets": alb.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five, statistic="Sum"),
            },
        )
        alarm(
            "Alb5xx",
            alb_5xx,
            thresholds.alb_5xx_per_5min,
            f"load balancer: {thresholds.alb_5xx_per_5min}+ 5xx responses in 5 minutes",
        )
        response_p95 = alb.target_response_time(period=five, statistic="p95")
        alarm(
            "AlbLatency",
            response_p95,
            thresholds.alb_p95_response_s,
            f"load balancer: p95 response time above {thresholds.alb_p95_response_s} s for 15 minutes",
            _GT,
            3,
        )

        dlq = props.dead_letters.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum")
        alarm(
            "IngestDeadLetters",
            dlq,
            thresholds.dlq_messages,
            "ingestion: knowledge-base files failed repeatedly and wait in the dead-letter queue",
        )

        def domain_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ES",
                metric_name=name,
                statistic=statistic,
                period=Duration.minutes(1),
                dimensions_map={"DomainName": props.domain_name, "ClientId": self.account},
            )

        alarm(
            "OpenSearchRed",
            domain_metric("ClusterStatus.red", "Maximum"),
            1,
            "OpenSearch: at least one primary shard is unassigned (red)",
        )
        alarm(
            "OpenSearchYellow",
            domain_metric("ClusterStatus.yellow", "Maximum"),
            1,
            "OpenSearch: replica shards unassigned (yellow) for 15 minutes",
            periods=15,
        )
        free = domain_metric("FreeStorageSpace", "Minimum")
        alarm(
            "OpenSearchStorage",
            free,
            thresholds.opensearch_free_storage_mb,
            f"OpenSearch: a node has under {thresholds.opensearch_free_storage_mb} MB free",
            cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
        )

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{props.app_name}-operations")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Model latency p95 (µs)", left=[e.metric_model_latency_p95() for e, _ in endpoints.values()]
            ),
            cloudwatch.GraphWidget(
                title="Model invocations and 5xx",
                left=[e.metric_invocations() for e, _ in endpoints.values()],
                right=[e.metric_5xx() for e, _ in endpoints.values()],
            ),
            cloudwatch.GraphWidget(title="Load balancer", left=[alb.request_count(period=five)], right=[response_p95]),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Ingestion dead letters", left=[dlq]),
            cloudwatch.GraphWidget(title="OpenSearch free storage (MB)", left=[free]),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=12),
        )
