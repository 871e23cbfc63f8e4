"""``JumpStartEndpoint``: a reusable construct that turns a ``ModelConfig`` into a SageMaker endpoint.

It builds the CfnModel / CfnEndpointConfig / CfnEndpoint (and, for scale-to-zero, a CfnInferenceComponent)
from the pins in ``jumpstart_configs/`` alone: the container is ``endpoints.sagemaker.builders.container_definition``,
the same function the swap tool uses, so a model deployed here and one swapped in later are built
identically, and nothing is looked up over the network at synth.

Three hosting choices, each a typed value that carries only its own settings:

* ``InstanceHosting``: instance-backed, at least one instance, in the VPC's model subnets, target-tracking
  autoscaling on ``InvocationsPerInstance``, optional data capture (production profile);
* ``ServerlessHosting``: serverless inference, billed per use and scaled to zero by SageMaker (cheap
  profile, CPU models only; serverless endpoints cannot be placed in a VPC, use network isolation or capture);
* ``ScaleToZeroHosting``: an inference component on an instance-backed endpoint with managed instance
  scaling down to zero instances; copies track ``InvocationsPerCopy`` and a step policy adds the first
  copy back when a request finds none (``NoCapacityInvocationFailures``) (cheap profile, GPU models).

The volume key is set wherever SageMaker accepts one: instance types with local NVMe storage (g5, g6,
p4d, ...) refuse ``KmsKeyId``, and encrypt that storage in hardware instead (``careqa_deploy.instance_types``).
Callers get invoke rights with ``grant_invoke`` rather than writing the IAM statement themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Annotations, Duration, Stack, Tags
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from careqa_deploy.instance_types import InstanceType
from endpoints.config import ModelConfig
from endpoints.sagemaker.builders import TAG_MODEL_CONFIG, TAG_MODEL_VERSION, container_definition

VARIANT = "AllTraffic"


@dataclass(frozen=True)
class DataCapture:
    destination_s3_uri: str
    percent: int


@dataclass(frozen=True)
class InstanceHosting:
    """Instance-backed: at least one instance, scaled on invocations per instance."""

    #: defaults to the model config's
    instance_type: str | None = None
    min_instances: int = 1
    max_instances: int = 1
    invocations_per_instance: int = 100


@dataclass(frozen=True)
class ServerlessHosting:
    """Serverless inference: billed per use, scaled to zero by SageMaker, CPU only, outside the VPC."""

    memory_mb: int = 3072
    max_concurrency: int = 10


@dataclass(frozen=True)
class ScaleToZeroHosting:
    """An inference component whose copies, and the instances under them, scale down to zero."""

    #: defaults to the model config's
    instance_type: str | None = None
    max_instances: int = 1
    max_copies: int = 1
    accelerators_per_copy: int = 1
    memory_mb_per_copy: int = 8192
    invocations_per_copy: int = 10


Hosting = InstanceHosting | ServerlessHosting | ScaleToZeroHosting


@dataclass(frozen=True)
class JumpStartEndpointProps:
    model: ModelConfig
    endpoint_name: str
    region: str
    hosting: Hosting
    execution_role: iam.IRole
    kms_key: kms.IKey
    accept_eula: bool = False
    #: where instances run (serverless endpoints cannot be placed in a VPC)
    vpc_subnets: tuple[ec2.ISubnet, ...] = ()
    security_group: ec2.ISecurityGroup | None = None
    #: captured requests and responses, on instance-backed endpoints (elsewhere a warning says it is ignored)
    data_capture: DataCapture | None = None
    #: large LLMs need minutes to download and load
    startup_timeout_s: int = 900


def grant_invoke(
    grantee: iam.IGrantable,
    endpoints: Sequence[JumpStartEndpoint],
    *,
    stream: bool = False,
    sid: str | None = None,
) -> iam.PolicyStatement:
    """Let ``grantee`` invoke ``endpoints`` (and stream their responses, with ``stream``), in one statement."""
    actions = ["sagemaker:InvokeEndpoint"]
    if stream:
        actions.append("sagemaker:InvokeEndpointWithResponseStream")
    statement = iam.PolicyStatement(sid=sid, actions=actions, resources=[e.endpoint_arn for e in endpoints])
    grantee.grant_principal.add_to_principal_policy(statement)
    return statement


class JumpStartEndpoint(Construct):
    """A SageMaker endpoint for one JumpStart model config, with its scaling."""

    def __init__(self, scope: Construct, construct_id: str, *, props: JumpStartEndpointProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.endpoint_name = props.endpoint_name
        model, hosting = props.model, props.hosting
        if not model.deployable:
            raise ValueError(f"{props.endpoint_name}: {model.name} is a local-only stand-in, not a SageMaker model")
        if isinstance(hosting, InstanceHosting) and hosting.min_instances < 1:
            raise ValueError(f"{props.endpoint_name}: an instance-backed endpoint needs min_instances >= 1")
        serverless = isinstance(hosting, ServerlessHosting)
        instance_type = "" if serverless else (hosting.instance_type or model.default_instance_type or "")
        self.instance_type = None if serverless else instance_type
        in_vpc = not serverless and bool(props.vpc_subnets)
        vpc_config = (
            sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=[props.security_group.security_group_id] if props.security_group else [],
                subnets=[s.subnet_id for s in props.vpc_subnets],
            )
            if in_vpc
            else None
        )

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=props.execution_role.role_arn,
            vpc_config=vpc_config if isinstance(hosting, InstanceHosting) else None,
            enable_network_isolation=True if isinstance(hosting, InstanceHosting) else None,
        )
        # The swap tool's builder gives the exact CloudFormation shape (PascalCase), so it goes in raw.
        self.model.add_property_override(
            "PrimaryContainer", container_definition(model, props.region, accept_eula=props.accept_eula)
        )
        self.model.node.add_dependency(props.execution_role)

        key_id = None if not serverless and InstanceType.of(instance_type).local_nvme else props.kms_key.key_arn
        self.volume_encrypted = key_id is not None
        if isinstance(hosting, ServerlessHosting):
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=self.model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=hosting.memory_mb, max_concurrency=hosting.max_concurrency
                ),
            )
        elif isinstance(hosting, InstanceHosting):
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=self.model.attr_model_name,
                instance_type=instance_type,
                initial_instance_count=hosting.min_instances,
                initial_variant_weight=1.0,
                container_startup_health_check_timeout_in_seconds=props.startup_timeout_s,
                model_data_download_timeout_in_seconds=props.startup_timeout_s,
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                instance_type=instance_type,
                initial_instance_count=1,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED", min_instance_count=0, max_instance_count=hosting.max_instances
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )

        capture = None
        if props.data_capture and props.data_capture.percent > 0:
            if isinstance(hosting, InstanceHosting):
                capture = sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                    enable_capture=True,
                    initial_sampling_percentage=props.data_capture.percent,
                    destination_s3_uri=props.data_capture.destination_s3_uri,
                    kms_key_id=props.kms_key.key_arn,
                    capture_options=[
                        sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                        sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                    ],
                    capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                        json_content_types=["application/json"]
                    ),
                )
            else:
                Annotations.of(self).add_warning_v2(
                    "careqa:data-capture-unsupported",
                    f"{props.endpoint_name}: data capture is only available on instance-backed endpoints; ignored",
                )

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[variant],
            kms_key_id=key_id,
            data_capture_config=capture,
            execution_role_arn=props.execution_role.role_arn if isinstance(hosting, ScaleToZeroHosting) else None,
            vpc_config=sagemaker.CfnEndpointConfig.VpcConfigProperty(
                security_group_ids=vpc_config.security_group_ids, subnets=vpc_config.subnets
            )
            if isinstance(hosting, ScaleToZeroHosting) and vpc_config
            else None,
            enable_network_isolation=True if isinstance(hosting, ScaleToZeroHosting) else None,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        # For people and for the swap tool's fallback; the swap tool's SSM record stays authoritative.
        Tags.of(self.endpoint).add(TAG_MODEL_CONFIG, model.name)
        Tags.of(self.endpoint).add(TAG_MODEL_VERSION, model.model_version)

        self.inference_component: sagemaker.CfnInferenceComponent | None = None
        self.inference_component_name: str | None = None
        if isinstance(hosting, InstanceHosting):
            self._instance_scaling(hosting)
        elif isinstance(hosting, ScaleToZeroHosting):
            self._component_scaling(hosting)

    @property
    def endpoint_arn(self) -> str:
        """The endpoint's ARN, built from its fixed name (no cross-stack export needed)."""
        return Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower()
        )

    def grant_invoke(
        self, grantee: iam.IGrantable, *, stream: bool = False, sid: str | None = None
    ) -> iam.PolicyStatement:
        """Let ``grantee`` invoke this endpoint (and stream its responses, with ``stream``)."""
        return grant_invoke(grantee, [self], stream=stream, sid=sid)

    # -- scaling ------------------------------------------------------------------------------------
    def _instance_scaling(self, hosting: InstanceHosting) -> None:
        target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=hosting.min_instances,
            max_capacity=max(hosting.max_instances, hosting.min_instances),
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=hosting.invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.minutes(10),
            scale_out_cooldown=Duration.minutes(3),
        )

    def _component_scaling(self, hosting: ScaleToZeroHosting) -> None:
        props = self.props
        name = f"{self.endpoint_name}-component"
        requirements = sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
            min_memory_required_in_mb=hosting.memory_mb_per_copy,
            number_of_accelerator_devices_required=hosting.accelerators_per_copy or None,
        )
        self.inference_component = sagemaker.CfnInferenceComponent(
            self,
            "Component",
            endpoint_name=self.endpoint.attr_endpoint_name,
            inference_component_name=name,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=requirements,
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=props.startup_timeout_s,
                    model_data_download_timeout_in_seconds=props.startup_timeout_s,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(copy_count=1),
        )
        self.inference_component_name = name
        target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0,
            max_capacity=hosting.max_copies,
        )
        target.node.add_dependency(self.inference_component)
        target.scale_to_track_metric(
            "InvocationsPerCopy",
            target_value=hosting.invocations_per_copy,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
            scale_in_cooldown=Duration.minutes(15),
            scale_out_cooldown=Duration.minutes(2),
        )
        # Target tracking never leaves zero: with no copy there are no invocations to track. A request that
        # finds no copy is counted as NoCapacityInvocationFailures, and that brings the first copy back.
        wake = appscaling.StepScalingAction(
            self,
            "ScaleOutFromZero",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(5),
        )
        wake.add_adjustment(adjustment=1, lower_bound=0)
        alarm = cloudwatch.Alarm(
            self,
            "NoCapacity",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": name},
                statistic="Maximum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{name}: a request found no model copy; adds one (scale out from zero)",
        )
        alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(wake))

    # -- metrics ------------------------------------------------------------------------------------
    def _dimensions(self) -> dict[str, str]:
        if self.inference_component_name:
            return {"InferenceComponentName": self.inference_component_name}
        return {"EndpointName": self.endpoint_name, "VariantName": VARIANT}

    def metric_model_latency_p95(self) -> cloudwatch.Metric:
        """p95 of ``ModelLatency`` (microseconds, as SageMaker reports it)."""
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions_map=self._dimensions(),
            statistic="p95",
            period=Duration.minutes(5),
        )

    def metric_5xx(self) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map=self._dimensions(),
            statistic="Sum",
            period=Duration.minutes(5),
        )

    def metric_invocations(self) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocations",
            dimensions_map=self._dimensions(),
            statistic="Sum",
            period=Duration.minutes(5),
        )
