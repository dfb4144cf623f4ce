"""The portal's only way to talk to Jenkins (python-jenkins, plus ``jenkins_request`` where it loses detail).

python-jenkins folds most failures into ``JenkinsException`` strings ("job[x] number[n] does not exist"
even for a 503), so reads go through ``jenkins_request`` and we map status codes ourselves (contract 1.2).
Every request has a timeout, python-jenkins' retries are off, and the first call is ``get_whoami()`` so Basic
auth is on the session before anything else (contract 1.1, gotcha 10.4).

Idempotent triggering: the caller passes a run marker parameter (e.g. ``OPSPORTAL_RUN=<release>-<attempt>``)
and, before triggering, asks ``find_build_by_marker`` whether a queue item or build with that marker exists.
The job must define the marker parameter: Jenkins drops undefined parameters.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET  # noqa: S405 - we parse Jenkins' and our own config.xml, not user input
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import jenkins
import requests

from integrations.errors import (
    Conflict,
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    parse_retry_after,
)

DEFAULT_TIMEOUT = 15.0  # seconds per request
RECENT_BUILDS = 25  # how far back find_build_by_marker looks

T = TypeVar("T")


# --- small results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    name: str
    url: str
    buildable: bool
    created: bool  # True when ensure_job copied the template this time
    next_build_number: int = 0


@dataclass(frozen=True)
class BuildInfo:
    number: int
    building: bool
    result: str | None  # None while running, then SUCCESS, UNSTABLE, FAILURE, NOT_BUILT or ABORTED
    duration_ms: int
    url: str

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


@dataclass(frozen=True)
class ConsoleChunk:
    text: str
    next_start: int  # byte offset to pass as ``start`` next time
    more: bool  # False once the log is complete


# --- error mapping ------------------------------------------------------------------------------------

_CODE_IN_MESSAGE = re.compile(r"\[(\d{3})\]")


def _status_error(code: int, message: str, cause: str, retry_after: float | None = None) -> IntegrationError:
    kwargs: dict[str, Any] = {"cause": cause, "status": code, "retry_after": retry_after}
    if code in (401, 403):
        return Unauthorized("Jenkins rejected the user or API token", **kwargs)
    if code == 404:
        return NotFound(message or "not found in Jenkins", **kwargs)
    if code == 409:
        return Conflict(message or "Jenkins refused: conflict", **kwargs)
    if code == 400:
        return Invalid(message or "Jenkins rejected the request", **kwargs)
    if code == 429 or code >= 500:
        return ServerError(f"Jenkins answered {code}", **kwargs)
    return IntegrationError(message or f"Jenkins answered {code}", **kwargs)


def error_from_jenkins(exc: Exception, what: str = "") -> IntegrationError:
    """Map python-jenkins / requests exceptions; ``what`` names the object for NotFound messages."""
    if isinstance(exc, jenkins.TimeoutException | requests.exceptions.Timeout):
        return Timeout("Jenkins did not answer in time", cause=str(exc))
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return Unreachable("cannot connect to Jenkins", cause=str(exc))
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response
        detail = response.headers.get("X-Error") or response.reason or ""
        # python-jenkins re-raises 429 and 503 as HTTPError with the response, so Retry-After survives;
        # 401/403/500 become JenkinsException text and lose their headers.
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        message = detail and f"{what}: {detail}".strip(": ")
        return _status_error(response.status_code, message, detail, retry_after)
    if isinstance(exc, jenkins.NotFoundException):
        return NotFound(f"{what or 'item'} does not exist in Jenkins", cause=str(exc), status=404)
    if isinstance(exc, jenkins.JenkinsException):
        text = str(exc)
        first_line = text.splitlines()[0] if text else ""
        match = _CODE_IN_MESSAGE.search(first_line)
        if match and "Error in request" in first_line:  # 401, 403, 500 from jenkins_request
            return _status_error(int(match.group(1)), "", first_line)
        if "does not exist" in text:
            return NotFound(first_line, cause=first_line, status=404)
        return IntegrationError(first_line or "Jenkins request failed", cause=text[:500])
    return IntegrationError("Jenkins request failed", cause=str(exc), permanent=False)


# --- config.xml ---------------------------------------------------------------------------------------


def render_freestyle_config(
    template_xml: str, *, description: str, parameters: list[tuple[str, str]], shell: str
) -> str:
    """Return ``template_xml`` with our description, string parameters and exactly one shell step.

    Everything else in the template (SCM, wrappers, publishers, node label) is kept. Values are set as
    element text, so the serializer escapes them: nothing here is spliced into XML by hand.
    """
    try:
        root = ET.fromstring(template_xml)  # noqa: S314 - trusted template from our own Jenkins
    except ET.ParseError as exc:
        raise Invalid("the Jenkins template config.xml is not valid XML", cause=str(exc)) from None
    if root.tag != "project":
        raise Invalid(f"the Jenkins template is a {root.tag}, not a freestyle <project>")

    _child(root, "description").text = description

    properties = _child(root, "properties")
    for old in properties.findall("hudson.model.ParametersDefinitionProperty"):
        properties.remove(old)
    if parameters:
        definitions = ET.SubElement(
            ET.SubElement(properties, "hudson.model.ParametersDefinitionProperty"), "parameterDefinitions"
        )
        for name, default in parameters:
            definition = ET.SubElement(definitions, "hudson.model.StringParameterDefinition")
            ET.SubElement(definition, "name").text = name
            ET.SubElement(definition, "description").text = ""
            ET.SubElement(definition, "defaultValue").text = default
            ET.SubElement(definition, "trim").text = "true"

    builders = _child(root, "builders")
    for old in list(builders):
        builders.remove(old)
    ET.SubElement(ET.SubElement(builders, "hudson.tasks.Shell"), "command").text = shell

    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")


def _child(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.find(tag)
    return found if found is not None else ET.SubElement(parent, tag)


def _marker_matches(actions: list[dict] | None, param: str, value: str) -> bool:
    for action in actions or []:
        # ParametersAction, or a plugin's subclass of it: any action carrying ``parameters``.
        if not isinstance(action, dict) or "parameters" not in action:
            continue
        for p in action.get("parameters") or []:
            if p.get("name") == param and str(p.get("value")) == value:
                return True
    return False


# --- the client ---------------------------------------------------------------------------------------


class JenkinsClient:
    def __init__(self, url: str, user: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not url:
            raise Invalid("Jenkins is not configured (no URL)")
        self.url = url if url.endswith("/") else url + "/"
        self._server = jenkins.Jenkins(self.url, username=user, password=token, timeout=timeout, retries=0)
        self._server._session.headers["User-Agent"] = "opsportal"
        self._ready = False

    # -- plumbing ------------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], what: str = "") -> T:
        try:
            if not self._ready:
                # Resolves Basic auth and the crumb before any other request (contract 1.1).
                self._server.get_whoami()
                self._ready = True
            return fn()
        except (jenkins.JenkinsException, requests.exceptions.RequestException) as exc:
            raise error_from_jenkins(exc, what) from exc

    def _request(self, method: str, path: str, params: dict | None = None) -> requests.Response:
        request = requests.Request(method, self.url + path, params=params)
        return self._server.jenkins_request(request)

    def _json(self, path: str, what: str, params: dict | None = None) -> dict:
        response = self._call(lambda: self._request("GET", path, params), what)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"Jenkins sent no JSON for {what}", cause=response.text[:200]) from None

    @staticmethod
    def _job_path(name: str) -> str:
        return "".join(f"job/{quote(part, safe='')}/" for part in name.split("/"))

    # -- jobs ----------------------------------------------------------------------------------------

    def job_info(self, name: str) -> JobInfo:
        data = self._json(self._job_path(name) + "api/json", f"job {name}", {"depth": 0})
        return JobInfo(
            name=name,
            url=data.get("url", ""),
            buildable=bool(data.get("buildable")),
            created=False,
            next_build_number=int(data.get("nextBuildNumber") or 0),
        )

    def ensure_job(
        self, name: str, template_name: str, config_xml_transform: Callable[[str], str]
    ) -> JobInfo:
        """Copy ``template_name`` to ``name`` if it is missing, then always save the transformed config.

        Saving the config also makes a freshly copied job buildable (contract 1.3). Safe to repeat.
        """
        created = False
        if not self._call(lambda: self._server.job_exists(name), f"job {name}"):
            try:
                self._call(lambda: self._server.copy_job(template_name, name), f"template {template_name}")
                created = True
            except Invalid:
                # 400 "A job already exists": a concurrent attempt copied it between our check and ours.
                if not self._call(lambda: self._server.job_exists(name), f"job {name}"):
                    raise
        current = self._call(lambda: self._server.get_job_config(name), f"job {name}")
        wanted = config_xml_transform(current)
        self._call(lambda: self._server.reconfig_job(name, wanted), f"job {name}")
        info = self.job_info(name)
        return JobInfo(info.name, info.url, info.buildable, created, info.next_build_number)

    def job_config(self, name: str) -> str:
        return self._call(lambda: self._server.get_job_config(name), f"job {name}")

    # -- builds --------------------------------------------------------------------------------------

    def trigger(self, name: str, params: dict[str, str]) -> int:
        """Queue a build with ``params`` (include the run marker) and return the queue item id."""
        if not params:
            raise Invalid("trigger needs parameters, at least the run marker")
        return self._call(lambda: self._server.build_job(name, dict(params)), f"job {name}")

    def find_queued_by_marker(self, name: str, marker_param: str, value: str) -> int | None:
        """The id of a waiting queue item of ``name`` carrying the marker, if any."""
        items = self._call(lambda: self._server.get_queue_info(), "queue")
        for item in items:
            if (item.get("task") or {}).get("name") == name.rsplit("/", 1)[-1] and _marker_matches(
                item.get("actions"), marker_param, value
            ):
                return int(item["id"])
        return None

    def find_build_by_marker(
        self, name: str, marker_param: str, value: str, *, queue_timeout: float = 60.0
    ) -> int | None:
        """The number of the build of ``name`` whose ``marker_param`` equals ``value``, or None.

        The queue is searched first, then the recent builds: an item that leaves the queue between the two
        looks is then already a build, so it cannot be missed. A queued match is waited for (at most
        ``queue_timeout`` seconds) and its build number returned.
        """
        queue_id = self.find_queued_by_marker(name, marker_param, value)
        if queue_id is not None:
            return self.wait_for_queue(queue_id, queue_timeout)
        data = self._json(
            self._job_path(name) + "api/json", f"job {name}", {"tree": f"builds[number]{{0,{RECENT_BUILDS}}}"}
        )
        for ref in data.get("builds") or []:
            number = int(ref["number"])
            build = self._json(
                f"{self._job_path(name)}{number}/api/json",
                f"build {name} #{number}",
                {"tree": "number,actions[parameters[name,value]]"},
            )
            if _marker_matches(build.get("actions"), marker_param, value):
                return number
        return None

    def _queue_item(self, queue_id: int) -> tuple[int | None, dict]:
        item = self._json(f"queue/item/{int(queue_id)}/api/json", f"queue item {queue_id}", {"depth": 0})
        if item.get("cancelled"):
            raise Conflict(f"queue item {queue_id} was cancelled in Jenkins")
        executable = item.get("executable")
        if executable and executable.get("number") is not None:
            return int(executable["number"]), item
        return None, item

    def queue_build_number(self, queue_id: int) -> int | None:
        """The build number of a queue item that started, None while it waits; ``Conflict`` if cancelled."""
        return self._queue_item(queue_id)[0]

    def wait_for_queue(self, queue_id: int, timeout: float, *, poll: float = 0.5) -> int:
        """Poll the queue item until it has a build number; ``Conflict`` if cancelled, ``Timeout`` if slow."""
        deadline = time.monotonic() + timeout
        while True:
            number, item = self._queue_item(queue_id)
            if number is not None:
                return number
            if time.monotonic() >= deadline:
                raise Timeout(
                    f"queue item {queue_id} did not start within {timeout:g}s", cause=item.get("why") or ""
                )
            time.sleep(poll)

    def build_info(self, name: str, number: int) -> BuildInfo:
        data = self._json(f"{self._job_path(name)}{int(number)}/api/json", f"build {name} #{number}")
        return BuildInfo(
            number=int(data["number"]),
            building=bool(data.get("building")),
            result=data.get("result"),
            duration_ms=int(data.get("duration") or 0),
            url=data.get("url", ""),
        )

    def console_chunk(self, name: str, number: int, start: int = 0) -> ConsoleChunk:
        """The console log from byte ``start``; call again with ``next_start`` while ``more`` is True."""
        path = f"{self._job_path(name)}{int(number)}/logText/progressiveText"
        response = self._call(
            lambda: self._request("GET", path, {"start": int(start)}), f"build {name} #{number}"
        )
        try:
            next_start = int(response.headers.get("X-Text-Size", ""))
        except ValueError:
            next_start = start + len(response.content)
        more = response.headers.get("X-More-Data", "").lower() == "true"
        text = response.content.decode("utf-8", errors="replace")
        return ConsoleChunk(text=text, next_start=next_start, more=more)

    def stop(self, name: str, number: int) -> None:
        self._call(lambda: self._server.stop_build(name, int(number)), f"build {name} #{number}")
