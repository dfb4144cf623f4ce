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


# Registered by the browser before any page script (init scripts are not subject to the page's CSP).
_CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


class CspWatch:
    """Counts Content-Security-Policy violations on a page: `securitypolicyviolation` events and the
    console errors Chromium prints for them."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        page.add_init_script(_CSP_RECORDER)
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def violations(self) -> list[str]:
        events = self.page.evaluate("window.__cspViolations || []")
        return [*events, *self.console]
