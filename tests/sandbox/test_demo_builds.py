"""Each demo service is built the way a release builds it: the portal's Jenkins client copies the language's
template job with the generic build shell (deploys/recipes.py), triggers it with the rendered generic
Dockerfile, and the Jenkins stand-in clones the GitLab stand-in, compiles, builds FROM the sandbox base image
named in OPSPORTAL_BASE_IMAGES and pushes to the sandbox registry. None of the demos has a Dockerfile, so
the pushed image's config can only have come from the generic one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import requests

from projects.choices import Language
from sandbox.images import build
from sandbox.seed import DEMO_PROJECTS
from tests.fixtures.standins import BUILD_IMAGE_SH, DEMO_REPOS, require, require_tools
from tests.helpers.demo_builds import (
    MANIFEST_ACCEPT,
    PORT,
    build_like_a_release,
    inspect_config,
    last_layer_files,
)

pytestmark = pytest.mark.standins

# What each generic Dockerfile (and its base image) must have put into the image.
EXPECTED = {
    "go-hello": {"entrypoint": ["/app/app"], "user": "65534:65534", "file": "app/app"},
    "java-hello": {
        "entrypoint": ["java", "-jar", "/app/app.jar"],
        "user": "65534:65534",
        "file": "app/app.jar",
    },
    # php's Dockerfile sets no ENTRYPOINT: the base image's CMD serves /var/www/html.
    "php-hello": {"entrypoint": None, "user": "", "file": "var/www/html/index.php"},
}


@pytest.mark.parametrize("name", list(DEMO_PROJECTS))
def test_demo_is_built_by_its_languages_generic_recipe(sandbox_pipeline, name):
    require_tools("git", "buildah", "skopeo")
    if name == "java-hello":
        require_tools("mvn", "java")
    language = str(DEMO_PROJECTS[name][0])
    require(language in sandbox_pipeline.base_images, f"the {language} base image (see sandbox/images)")
    assert not list(DEMO_REPOS.joinpath(name).glob("*ockerfile")), "the demo must not ship a Dockerfile"
    assert not (DEMO_REPOS / name / "Containerfile").exists()

    image, console, seconds = build_like_a_release(sandbox_pipeline, name, "v1.0.0")
    print(f"{name}: tag-to-pushed build through Jenkins took {seconds:.1f} s")
    base = sandbox_pipeline.base_images[language]
    assert f"pulling base image {base}" in console
    pushed = [line for line in console.splitlines() if line.startswith(f"pushed {image}@sha256:")]
    assert len(pushed) == 1, console[-3000:]
    digest = pushed[0].rsplit("@", 1)[1]

    config = inspect_config(f"{image.rsplit(':', 1)[0]}@{digest}")
    base_config = inspect_config(base)
    expected = EXPECTED[name]
    assert config["config"].get("Entrypoint") == expected["entrypoint"]
    assert config["config"].get("User", "") == expected["user"]
    assert f"{PORT}/tcp" in config["config"]["ExposedPorts"]
    # Built on the base image: its layers come first, and its environment is kept.
    base_layers = base_config["rootfs"]["diff_ids"]
    assert config["rootfs"]["diff_ids"][: len(base_layers)] == base_layers
    assert len(config["rootfs"]["diff_ids"]) > len(base_layers)
    assert set(base_config["config"]["Env"]) <= set(config["config"]["Env"])
    if name == "php-hello":
        assert config["config"]["Cmd"] == base_config["config"]["Cmd"]
        assert "php -q -S" in " ".join(config["config"]["Cmd"])
    if name == "java-hello":
        assert "PATH=/opt/java/bin:/bin" in config["config"]["Env"]
    files = last_layer_files(sandbox_pipeline.registry.url, f"demo/{name}", digest)
    assert expected["file"] in files, sorted(files)[:50]
    # The preStop hook's HTTP client, copied from the helper image's stage (OPSPORTAL_PRESTOP_HELPER_IMAGE).
    assert f"pulling base image {sandbox_pipeline.prestop_helper_image}" in console
    assert "opt/opsportal/bin/http-post" in files, sorted(files)[:50]


def test_base_images_are_in_the_registry_and_named_for_the_portal(sandbox_pipeline):
    images = json.loads(sandbox_pipeline.settings()["OPSPORTAL_BASE_IMAGES"])
    assert images == sandbox_pipeline.base_images
    assert images["default"] == images["go"]
    for language in ("go", "java", "php", "python"):
        require(language in images, f"the {language} base image (see sandbox/images)")
        assert images[language].startswith(f"{sandbox_pipeline.registry.host}/sandbox/base/")
        config = inspect_config(images[language])
        assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert "JAVA_HOME=/opt/java" in inspect_config(images["java"])["config"]["Env"]
    assert inspect_config(images["php"])["config"]["WorkingDir"] == "/var/www/html"
    python = inspect_config(images["python"])["config"]
    assert python["Env"] == ["PATH=/opt/python/bin:/bin"]
    assert not python.get("Entrypoint")


def test_the_prestop_helper_image_holds_only_the_static_http_client(sandbox_pipeline):
    helper = sandbox_pipeline.settings()["OPSPORTAL_PRESTOP_HELPER_IMAGE"]
    assert helper == sandbox_pipeline.prestop_helper_image
    assert helper.startswith(f"{sandbox_pipeline.registry.host}/sandbox/base/prestop-helper:")
    repository, tag = helper.split("/", 1)[1].rsplit(":", 1)
    manifest = requests.get(
        f"{sandbox_pipeline.registry.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=10,
    ).json()
    [layer] = manifest["layers"]
    blob = requests.get(
        f"{sandbox_pipeline.registry.url}/v2/{repository}/blobs/{layer['digest']}", timeout=60
    )
    files = {}
    # Streamed: umoci 0.4.7 ends a layer right after the last file's data (no padding, no end blocks), which
    # buildah accepts and tarfile's random access does not.
    with (
        contextlib.suppress(tarfile.ReadError),
        tarfile.open(fileobj=io.BytesIO(blob.content), mode="r|gz") as tar,
    ):
        for member in tar:
            if member.isfile():
                files[member.name.lstrip("./")] = member.mode
    assert files == {"opt/opsportal/bin/http-post": 0o755}


ROW = re.compile(r"<tr><td>([^<]+)</td><td>[^<]*</td><td class=\"base-image\">(.*?)</td>", re.S)


@pytest.mark.django_db
def test_recipes_page_shows_the_base_image_of_each_language(client, people, sandbox_pipeline, settings):
    settings.OPSPORTAL_BASE_IMAGES = json.loads(sandbox_pipeline.settings()["OPSPORTAL_BASE_IMAGES"])
    client.force_login(people.ops)
    page = client.get("/recipes/")
    assert page.status_code == 200
    rows = dict(ROW.findall(page.content.decode()))
    labels = dict(Language.choices)
    for language in ("go", "java", "php", "python"):
        assert rows[str(labels[language])] == f"<code>{settings.OPSPORTAL_BASE_IMAGES[language]}</code>"
    # Languages without an image of their own show the default one (what {{ base_image }} becomes).
    assert rows[str(labels["node"])] == f"<code>{settings.OPSPORTAL_BASE_IMAGES['default']}</code>"

    settings.OPSPORTAL_PRESTOP_HELPER_IMAGE = sandbox_pipeline.prestop_helper_image
    helper = re.search(r'id="prestop-helper-image">(.*?)</p>', page.content.decode(), re.S)
    assert helper and f"<code>{sandbox_pipeline.prestop_helper_image}</code>" not in helper[1]  # not set yet
    page = client.get("/recipes/")
    helper = re.search(r'id="prestop-helper-image">(.*?)</p>', page.content.decode(), re.S)
    assert (
        f"OPSPORTAL_PRESTOP_HELPER_IMAGE: <code>{sandbox_pipeline.prestop_helper_image}</code>" in helper[1]
    )

    settings.OPSPORTAL_BASE_IMAGES = {"java": "127.0.0.1:5000/sandbox/base/java:x"}
    rows = dict(ROW.findall(client.get("/recipes/").content.decode()))
    assert rows[str(labels["java"])] == "<code>127.0.0.1:5000/sandbox/base/java:x</code>"
    assert "not set" in rows[str(labels["go"])]
    client.force_login(people.developer)
    assert client.get("/recipes/").status_code == 404


@pytest.mark.parametrize(
    ("name", "argv", "expected"),
    [
        ("java", ["java", "-XX:MaxRAMPercentage=75.0", "-version"], "OpenJDK 64-Bit Server VM"),
        (
            "php",
            ["php", "-r", 'echo json_encode(["tz" => date_default_timezone_get()]), PHP_EOL;'],
            '{"tz":"UTC"}',
        ),
        ("busybox", ["sh", "-c", "id -u nobody"], "65534"),
        (
            "python",
            # Modules whose shared libraries the ldd closure brought (ssl, sqlite3, lzma, ctypes …), and pip.
            [
                "python",
                "-c",
                "import sys, ssl, sqlite3, lzma, bz2, zlib, ctypes, decimal, uuid, asyncio, pip; "
                # and what a manylinux wheel may link without bundling (hiredis names libpthread)
                "[ctypes.CDLL(n) for n in ('libpthread.so.0', 'librt.so.1', 'libstdc++.so.6')]; "
                f"print(sys.prefix, sys.version_info[:2] == {tuple(sys.version_info[:2])})",
            ],
            "/opt/python True",
        ),
    ],
)
def test_base_image_runs_its_runtime_from_its_own_files(tmp_path, name, argv, expected):
    """The image's rootfs alone (no host /usr, no network) runs the language's runtime: the ldd closure is
    complete and PATH is right."""
    require_tools("umoci", "bwrap")
    layout, tag = build(name)
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = json.loads((bundle / "config.json").read_text())["process"]["env"]
    sandbox = ["bwrap", "--bind", str(bundle / "rootfs"), "/", "--proc", "/proc", "--dev", "/dev"]
    sandbox += ["--tmpfs", "/tmp", "--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"]
    for variable in env:
        sandbox += ["--setenv", *variable.split("=", 1)]
    done = subprocess.run([*sandbox, *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize("base", ["docker.io/library/alpine:3.20", "alpine", "10.0.1.5:5000/x/y:1"])
def test_build_image_refuses_a_base_image_from_outside_the_machine(tmp_path, base):
    require_tools("buildah")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY . /app/\n")
    done = subprocess.run(
        ["bash", str(BUILD_IMAGE_SH), str(context), "127.0.0.1:1/demo/x:v1"],
        env={**os.environ, "SANDBOX_BUILDAH_ROOT": str(tmp_path / "buildah")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"base image {base} is not in a registry on this machine" in done.stderr
    assert "pulling" not in done.stdout
