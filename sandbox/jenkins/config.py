"""Reading job config.xml and Jenkins' ``tree=`` response filter."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

FREESTYLE_CLASS = "hudson.model.FreeStyleProject"
PIPELINE_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
# Jenkins accepts both spellings; python-jenkins' own test fixtures use the jenkins.* one.
_SHELL_TAGS = ("hudson.tasks.Shell", "jenkins.tasks.Shell")
_PARAM_TYPES = {
    "hudson.model.StringParameterDefinition",
    "hudson.model.TextParameterDefinition",
    "hudson.model.BooleanParameterDefinition",
    "hudson.model.ChoiceParameterDefinition",
    "hudson.model.PasswordParameterDefinition",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ParamDef:
    kind: str  # the definition's Java class, e.g. hudson.model.StringParameterDefinition
    name: str
    description: str
    default: str

    @property
    def value_class(self) -> str:
        return self.kind.replace("Definition", "Value").replace(
            "ChoiceParameterValue", "StringParameterValue"
        )


@dataclass(frozen=True)
class JobConfig:
    job_class: str
    description: str
    disabled: bool
    concurrent: bool
    params: list[ParamDef] = field(default_factory=list)
    shell_steps: list[str] = field(default_factory=list)


def _text(elem: ET.Element | None, default: str = "") -> str:
    return elem.text or default if elem is not None else default


def parse_config(xml: str) -> JobConfig:
    try:
        # Only the sandbox's authenticated clients post configs, and expat >= 2.4 bounds entity expansion.
        root = ET.fromstring(xml.encode())  # noqa: S314
    except ET.ParseError as exc:
        raise ConfigError(f"Failed to parse config.xml: {exc}") from exc
    if root.tag not in ("project", "flow-definition"):
        raise ConfigError(
            f"Unsupported job type <{root.tag}>: only freestyle <project> and <flow-definition>"
        )
    params = []
    for definition in root.iterfind(
        "properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions/*"
    ):
        if definition.tag not in _PARAM_TYPES:
            raise ConfigError(f"Unsupported parameter type {definition.tag}")
        default = _text(definition.find("defaultValue"))
        if definition.tag.endswith("ChoiceParameterDefinition"):
            default = (
                _text(definition.find("choices//string")) or _text(definition.find("choices")).split("\n")[0]
            )
        params.append(
            ParamDef(
                definition.tag, _text(definition.find("name")), _text(definition.find("description")), default
            )
        )
    shells = [_text(step.find("command")) for step in root.iterfind("builders/*") if step.tag in _SHELL_TAGS]
    return JobConfig(
        job_class=FREESTYLE_CLASS if root.tag == "project" else PIPELINE_CLASS,
        description=_text(root.find("description")),
        disabled=_text(root.find("disabled"), "false").strip() == "true",
        concurrent=_text(root.find("concurrentBuild"), "false").strip() == "true",
        params=params,
        shell_steps=shells,
    )


def set_disabled(xml: str, disabled: bool) -> str:
    """Rewrite <disabled> textually: re-serialising with ElementTree would drop the XML declaration."""
    value = "true" if disabled else "false"
    if re.search(r"<disabled>\s*(true|false)\s*</disabled>", xml):
        return re.sub(
            r"<disabled>\s*(true|false)\s*</disabled>", f"<disabled>{value}</disabled>", xml, count=1
        )
    return re.sub(r"(<project[^>]*>)", rf"\1<disabled>{value}</disabled>", xml, count=1)


# -- tree= -------------------------------------------------------------------------------------------------

TreeSpec = dict[str, tuple["TreeSpec | None", "tuple[int | None, int | None] | None"]]


def parse_tree(expr: str) -> TreeSpec:
    spec, rest = _parse_tree_list(expr.replace(" ", ""))
    if rest:
        raise ValueError(f"unexpected {rest!r} in tree")
    return spec


def _parse_tree_list(s: str) -> tuple[TreeSpec, str]:
    spec: TreeSpec = {}
    while True:
        match = re.match(r"[A-Za-z_$][\w$]*", s)
        if not match:
            raise ValueError(f"bad tree near {s!r}")
        name, s = match.group(0), s[match.end() :]
        child: TreeSpec | None = None
        window: tuple[int | None, int | None] | None = None
        if s.startswith("["):
            child, s = _parse_tree_list(s[1:])
            if not s.startswith("]"):
                raise ValueError("unbalanced [ in tree")
            s = s[1:]
        if match := re.match(r"\{(\d*)(,?)(\d*)\}", s):
            lo = int(match.group(1)) if match.group(1) else None
            hi = int(match.group(3)) if match.group(3) else None
            # {n} alone means the single element n, as in Stapler's Range.
            window = (lo, hi) if match.group(2) else (lo, (lo or 0) + 1)
            s = s[match.end() :]
        spec[name] = (child, window)
        if not s.startswith(","):
            return spec, s
        s = s[1:]


def apply_tree(value: Any, spec: TreeSpec | None) -> Any:
    if spec is None:
        return value
    if isinstance(value, list):
        return [apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    result = {"_class": value["_class"]} if "_class" in value else {}
    for key, (child, window) in spec.items():
        if key not in value:
            continue
        item = value[key]
        if window is not None and isinstance(item, list):
            item = item[window[0] : window[1]]
        result[key] = apply_tree(item, child)
    return result
