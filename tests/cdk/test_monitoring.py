"""The monitoring stack: the alarms that page, on an encrypted topic, and a dashboard."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Synth


def _alarms(synth: Synth) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synth.resources("monitoring", "AWS::CloudWatch::Alarm").values()]


def _metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in alarm.get("Metrics", []) if "MetricStat" in m}


def test_every_required_alarm_exists_and_notifies_the_topic(synth: Synth) -> None:
    alarms = _alarms(synth)
    names = [n for a in alarms for n in _metric_names(a)]
    assert names.count("ModelLatency") == 2 and names.count("Invocation5XXErrors") == 2
    for metric in (
        "TargetResponseTime",
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
        "ApproximateNumberOfMessagesVisible",
        "ClusterStatus.red",
        "ClusterStatus.yellow",
        "FreeStorageSpace",
    ):
        assert metric in names, metric
    for alarm in alarms:
        assert "AlarmTopic" in json.dumps(alarm["AlarmActions"]) or "Alarms" in json.dumps(alarm["AlarmActions"])


def test_latency_alarms_use_p95(synth: Synth) -> None:
    for alarm in _alarms(synth):
        if _metric_names(alarm) & {"ModelLatency", "TargetResponseTime"}:
            assert alarm["ExtendedStatistic"] == "p95"


def test_model_latency_threshold_is_in_microseconds(synth: Synth) -> None:
    thresholds = sorted(a["Threshold"] for a in _alarms(synth) if _metric_names(a) == {"ModelLatency"})
    assert thresholds == [1000 * 1000, 20000 * 1000]  # alarms.*_latency_p95_ms in the example config


def test_alarm_topic_is_kms_encrypted(synth: Synth) -> None:
    (topic,) = synth.resources("monitoring", "AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]


def test_dashboard_exists(synth: Synth) -> None:
    synth.templates["monitoring"].resource_count_is("AWS::CloudWatch::Dashboard", 1)
