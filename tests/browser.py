"""Helpers for driving the portal in a real browser."""

from tests.fixtures.people import PASSWORD


def sign_in(chromium, base_url: str, username: str, locale: str = "en-US"):
    context = chromium.new_context(locale=locale)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#dashboard-title")
    return page
