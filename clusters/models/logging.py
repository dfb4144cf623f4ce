"""The log pipeline of a cluster: the Redis-protocol → Kafka proxy (``logproxy/``) the portal deploys there,
and where the portal itself reads the services' log lines back from Kafka.

Services that "log to the pipeline" get ``LOG_REDIS_URL`` (the proxy's address as they reach it) and
``LOG_REDIS_KEY`` (``logs:<project>:<environment>``); the proxy turns each pushed line into a Kafka record
whose key is that list key and whose topic comes from the mapping, so the portal finds a service's lines by
topic and record key."""

from fnmatch import fnmatchcase
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from logproxy.config import TOPIC_NAME, ConfigError, Route, parse_routes
from opsportal.secrets import EncryptedTextField

DEFAULT_NAMESPACE = "opsportal-logging"
SERVICE_NAME = "logproxy"
PROXY_PORT = 6379


def log_key(project_name: str, environment: str) -> str:
    """The Redis list key (and so the Kafka record key) of one project environment's log lines."""
    return f"logs:{project_name}:{environment}"


def validate_topic(value: str) -> None:
    if not TOPIC_NAME.match(value or "") or value in {".", ".."}:
        raise ValidationError(
            _("%(topic)s is not a Kafka topic name: use letters, digits, '.', '_' and '-' (at most 249).")
            % {"topic": value or '""'},
            code="invalid_topic",
        )


def topic_mapping_env(text: str) -> str:
    """The mapping as the proxy's ``LOGPROXY_TOPICS`` takes it: rules separated by commas (the page also
    allows one per line)."""
    return ",".join(filter(None, (line.strip() for line in text.replace(",", "\n").splitlines())))


def parse_topic_mapping(text: str) -> tuple[Route, ...]:
    """``pattern=topic`` rules, one per line or separated by commas; the first pattern (a glob over the list
    key, e.g. ``logs:orders:*``) that matches decides. Parsed by the proxy's own parser, so the page accepts
    exactly what the proxy will."""
    try:
        return parse_routes(topic_mapping_env(text))
    except ConfigError as exc:
        raise ValidationError(
            _("%(problem)s. Write each rule as key-pattern=topic, e.g. logs:orders:*=orders-logs.")
            % {"problem": str(exc).removeprefix("LOGPROXY_TOPICS: ")},
            code="invalid_rule",
        ) from None


def validate_topic_mapping(value: str) -> None:
    parse_topic_mapping(value)


def validate_bootstrap_servers(value: str) -> None:
    for server in filter(None, (s.strip() for s in (value or "").split(","))):
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValidationError(
                _("%(server)s: write Kafka's bootstrap servers as host:port, separated by commas.")
                % {"server": server},
                code="invalid_bootstrap",
            )


class LogPipeline(models.Model):
    """One per cluster: how the proxy is configured there and how the portal reaches its Kafka."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="log_pipeline")
    # As the proxy's pods reach Kafka.
    kafka_bootstrap_servers = models.CharField(
        _("Kafka bootstrap servers"), max_length=500, validators=[validate_bootstrap_servers]
    )
    # As the portal (its workers) reaches the same Kafka; empty: the same addresses.
    portal_bootstrap_servers = models.CharField(
        _("Kafka bootstrap servers for the portal"),
        max_length=500,
        blank=True,
        validators=[validate_bootstrap_servers],
    )
    default_topic = models.CharField(
        _("default topic"), max_length=249, default="app-logs", validators=[validate_topic]
    )
    topic_mapping = models.TextField(
        _("topic mapping"), blank=True, default="", validators=[validate_topic_mapping]
    )
    # The proxy's AUTH password; empty: no AUTH. Services get it inside LOG_REDIS_URL (a Secret).
    password = EncryptedTextField(_("proxy password"), blank=True, default="")
    namespace = models.CharField(_("namespace"), max_length=63, default=DEFAULT_NAMESPACE)
    # host:port as the services reach the proxy; empty: the Service's DNS name.
    service_address = models.CharField(_("address for services"), max_length=255, blank=True)
    min_replicas = models.PositiveSmallIntegerField(_("minimum replicas"), default=2)
    max_replicas = models.PositiveSmallIntegerField(_("maximum replicas"), default=6)
    # A Kibana (or any log UI) link per service: {project}, {environment}, {key} and {topic} are filled in.
    kibana_url = models.CharField(_("Kibana link"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("log pipeline")

    def __str__(self) -> str:
        return f"log pipeline of {self.cluster_id}"

    @property
    def portal_bootstrap(self) -> str:
        return self.portal_bootstrap_servers or self.kafka_bootstrap_servers

    @property
    def proxy_address(self) -> str:
        return self.service_address or f"{SERVICE_NAME}.{self.namespace}.svc:{PROXY_PORT}"

    def redis_url(self) -> str:
        """``LOG_REDIS_URL`` as a service gets it (with the password: only ever put into a Secret)."""
        auth = f":{quote(str(self.password), safe='')}@" if self.password else ""
        return f"redis://{auth}{self.proxy_address}/0"

    def topic_for(self, key: str) -> str:
        for route in parse_topic_mapping(self.topic_mapping):
            if fnmatchcase(key, route.pattern):
                return route.topic
        return self.default_topic
