"""Resolving the broker's jars from Maven Central: keyed by the pom, reused when current, honest failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.kafka import build
from sandbox.kafka.server import KafkaError, KafkaServer
from tests.fixtures.ci import unavailable


def test_the_jars_are_keyed_by_the_pom(monkeypatch, tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    monkeypatch.setattr(build, "POM", pom)
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    first = build.libs_dir()
    assert first == tmp_path / "cache" / "kafka" / build.pom_hash() / "libs"
    pom.write_text("<project><!-- edited --></project>")
    assert build.libs_dir() != first
    assert not build.libs_ready()


def test_the_repository_pom_pins_its_versions() -> None:
    text = build.POM.read_text()
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>4.4.0</version>" in text
    assert "<artifactId>maven-dependency-plugin</artifactId>\n        <version>3.11.0</version>" in text
    assert "<artifactId>kafka-tools</artifactId>" not in text  # 93 more jars, not needed


def test_a_current_cache_is_reused_without_running_maven(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "")  # no mvn, no java: reaching them would fail
    libs = build.libs_dir()
    libs.mkdir(parents=True)
    (libs / build.BROKER_JAR).write_bytes(b"PK")
    said: list[str] = []
    assert build.ensure_libs(progress=said.append) == libs
    assert said == [f"[kafka] {libs} is current"]


def test_a_directory_without_the_broker_jar_is_not_current(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "")
    build.libs_dir().mkdir(parents=True)  # e.g. emptied by hand
    assert not build.libs_ready()
    with pytest.raises(
        build.BuildError,
        match="`mvn` not found: apt-get install maven, then build it with `make kafka-server`",
    ):
        build.ensure_libs(progress=lambda _: None)


def test_a_failed_resolution_says_why_and_what_to_do(monkeypatch, tmp_path: Path) -> None:
    if shutil.which("mvn") is None:
        unavailable("mvn not installed (apt-get install maven)")
    pom = tmp_path / "pom.xml"
    pom.write_text("<project><modelVersion>4.0.0</modelVersion>")  # not even XML
    monkeypatch.setattr(build, "POM", pom)
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    with pytest.raises(build.BuildError) as failed:
        build.ensure_libs(progress=lines.append)
    message = str(failed.value)
    assert "mvn failed with exit code" in message
    assert "[ERROR]" in message  # Maven's own words about the cause
    assert "make kafka-server" in message
    assert any(line.startswith("[kafka] $ mvn -B") for line in lines)  # the progress was shown
    assert not build.libs_ready()
    assert not list((tmp_path / "cache" / "kafka").glob(".building-*"))  # no half-resolved leftovers


def test_missing_jars_name_the_command_that_resolves_them(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path))
    server = KafkaServer(tmp_path / "broker")
    with pytest.raises(KafkaError, match="make kafka-server"):
        server.start()
    assert server.process is None
