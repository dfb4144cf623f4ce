"""The panels' PromQL: every template is valid PromQL (checked by the real promtool) and a label value
cannot leave its string."""

import shutil
import subprocess

import pytest
import yaml

from observability.monitoring.promql import (
    PANELS,
    TRAFFIC,
    Scope,
    label_value,
    panel_get,
    panel_queries,
    rate_window,
    render,
)
from tests.fixtures.ci import unavailable

SCOPE = Scope(
    project="go-hello", env="test", namespace="go-hello-test", deployment="go-hello", hpa="go-hello"
)
HOSTILE = 'x"} or up{job=~".+'


def _check_with_promtool(expressions: list[str], tmp_path) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if not promtool:
        unavailable("promtool (Debian package prometheus) is not installed")
    rules = {
        "groups": [
            {"name": "panels", "rules": [{"record": f"r{i}", "expr": e} for i, e in enumerate(expressions)]}
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30)


def test_every_panel_expression_parses_with_promtool(tmp_path):
    expressions = [
        expr for panel in PANELS for _legend, expr in panel_queries(panel, SCOPE, window_seconds=20)
    ]
    expressions.append(render(TRAFFIC, SCOPE, window_seconds=20))
    assert len(expressions) >= 14
    result = _check_with_promtool(expressions, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_sees_a_broken_expression(tmp_path):
    """The check above can fail: an unbalanced expression is refused."""
    result = _check_with_promtool(["sum(rate(http_requests_total[1m])"], tmp_path)
    assert result.returncode != 0


def test_a_hostile_label_value_stays_inside_its_string(tmp_path):
    scope = Scope(project=HOSTILE, env="test", namespace=HOSTILE, deployment=HOSTILE, hpa=HOSTILE)
    expressions = [
        expr for panel in PANELS for _legend, expr in panel_queries(panel, scope, window_seconds=20)
    ]
    assert all(label_value(HOSTILE) in expr for expr in expressions)
    # Parsed as one string: the expressions are still valid, and they select on the literal value.
    assert _check_with_promtool(expressions, tmp_path).returncode == 0
    assert 'project="x\\"} or up{job=~\\".+"' in render(TRAFFIC, scope, window_seconds=20)


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [("plain", '"plain"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("a\nb", '"a\\nb"')],
)
def test_label_value_escapes(raw, quoted):
    assert label_value(raw) == quoted


def test_panels_are_found_by_id_and_unknown_ids_are_not():
    assert panel_get("requests").unit == "reqps"
    assert panel_get("nope") is None
    assert len({panel.id for panel in PANELS}) == len(PANELS)


def test_the_rate_window_covers_four_scrapes_and_the_step():
    assert rate_window(5, 5) == 20
    assert rate_window(60, 5) == 65


def test_dashboards_use_grafanas_rate_interval(tmp_path):
    expressions = [e for panel in PANELS for _legend, e in panel_queries(panel, SCOPE, grafana=True)]
    with_rate = [e for e in expressions if "rate(" in e]
    assert len(with_rate) == 6 and all("[$__rate_interval]" in e for e in with_rate)
    assert not any("[0s]" in e for e in expressions)
