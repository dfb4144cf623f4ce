"""The log proxy's throughput PromQL: valid for the real promtool, and a hostile cluster or namespace name
stays inside its label string."""

import shutil
import subprocess

import yaml

from observability.monitoring.promql import logproxy_queries
from tests.fixtures.ci import unavailable

HOSTILE = 'x"} or up{job=~".+'


def _promtool_check(expressions: list[str], tmp_path) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if not promtool:
        unavailable("promtool (Debian package prometheus) is not installed")
    rules = {
        "groups": [
            {"name": "logproxy", "rules": [{"record": f"r{i}", "expr": e} for i, e in enumerate(expressions)]}
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)


def test_the_throughput_expressions_parse_and_select_the_proxy_of_one_cluster(tmp_path):
    queries = logproxy_queries(cluster="prod-a", namespace="opsportal-logging", window=60)
    assert set(queries) == {"in", "out"}
    assert queries["in"] == (
        'sum(rate(logproxy_lines_in_total{service="logproxy",cluster="prod-a",namespace="opsportal-logging"}[60s]))'
    )
    assert "logproxy_lines_out_total" in queries["out"]
    result = _promtool_check([*queries.values(), "sum(rate(x[1m])"], tmp_path)
    assert result.returncode != 0  # the check can fail: the last one is unbalanced
    result = _promtool_check(list(queries.values()), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_hostile_name_stays_inside_its_string(tmp_path):
    queries = logproxy_queries(cluster=HOSTILE, namespace=HOSTILE, window=60)
    for expr in queries.values():
        assert 'cluster="x\\"} or up{job=~\\".+"' in expr
        assert " or up{" not in expr.replace('\\"} or up{', "")
    result = _promtool_check(list(queries.values()), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
