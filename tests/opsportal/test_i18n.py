import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_page_follows_the_browser_language(client):
    chinese = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert '<html lang="zh-hans">' in chinese.content.decode()
    assert "登录" in chinese.content.decode()
    english = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")
    assert "Sign in to OpsPortal" in english.content.decode()
    assert "登录" not in english.content.decode()


def test_saved_user_language_beats_the_browser(client, people):
    client.force_login(people.developer)
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    page = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert "仪表盘" in page.content.decode()
    client.post(reverse("set-language"), {"language": "en", "next": "/"})
    page = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "Dashboard" in page.content.decode()


def test_unknown_language_is_ignored(client, people):
    client.force_login(people.developer)
    response = client.post(reverse("set-language"), {"language": "xx-evil", "next": "/"})
    assert response.status_code == 302
    assert client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="en").status_code == 200


def _outside_a_request(language: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANGUAGE_CODE": language, "DJANGO_SETTINGS_MODULE": "opsportal.settings_test"}
    code = (
        "import django; django.setup(); "
        "from django.utils.translation import gettext; print(gettext('Dashboard'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True
    )


def test_language_code_sets_what_the_worker_writes():
    chinese = _outside_a_request("zh-hans")
    assert chinese.returncode == 0, chinese.stderr
    assert chinese.stdout.strip() == "仪表盘"
    unknown = _outside_a_request("fr")
    assert unknown.returncode != 0
    assert "LANGUAGE_CODE must be one of en, zh-hans, not 'fr'" in unknown.stderr
