import pytest
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
