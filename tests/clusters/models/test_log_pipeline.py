import pytest
from django.core.exceptions import ValidationError

from clusters.models import LogPipeline, log_key
from clusters.models.logging import (
    parse_topic_mapping,
    validate_bootstrap_servers,
    validate_topic,
)


def test_a_service_key_names_project_and_environment():
    assert log_key("orders", "prod") == "logs:orders:prod"


def test_the_first_matching_rule_decides_and_the_default_catches_the_rest():
    pipeline = LogPipeline(
        default_topic="app-logs",
        topic_mapping="logs:orders:*=orders-logs\nlogs:*:prod=prod-logs, logs:pay:*=pay-logs",
    )
    assert pipeline.topic_for("logs:orders:prod") == "orders-logs"
    assert pipeline.topic_for("logs:pay:prod") == "prod-logs"
    assert pipeline.topic_for("logs:pay:test") == "pay-logs"
    assert pipeline.topic_for("logs:web:test") == "app-logs"


@pytest.mark.parametrize("text", ["logs:*", "=topic", "logs:*=bad topic", "logs:*=" + "x" * 250])
def test_a_malformed_rule_is_refused_with_the_rule_named(text):
    with pytest.raises(ValidationError):
        parse_topic_mapping(text)


@pytest.mark.parametrize("value", ["kafka", "kafka:x", "kafka:0", ":9092", "a:9092,b"])
def test_bootstrap_servers_need_host_and_port(value):
    with pytest.raises(ValidationError):
        validate_bootstrap_servers(value)


def test_good_values_pass():
    validate_bootstrap_servers("kafka-0.kafka:9092, kafka-1.kafka:9092")
    validate_topic("app-logs.v1_x")


def test_the_redis_url_carries_the_password_escaped_and_defaults_to_the_service_name():
    pipeline = LogPipeline(namespace="logging", password="p@ss:/word")
    assert pipeline.proxy_address == "logproxy.logging.svc:6379"
    assert pipeline.redis_url() == "redis://:p%40ss%3A%2Fword@logproxy.logging.svc:6379/0"
    pipeline = LogPipeline(service_address="10.0.1.7:6379")
    assert pipeline.redis_url() == "redis://10.0.1.7:6379/0"
    assert pipeline.portal_bootstrap == ""
