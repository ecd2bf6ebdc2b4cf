"""The Content-Security-Policy: every page carries it, it lets no script run but the product's own
files and names no other host, and no template holds what it would block (an inline script, an
event-handler attribute, a `javascript:` URL, a `<style>` element or a `style` attribute).

Its browser side, that the pages work under it, is `tests/e2e/test_csp_browser.py`.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from conversations.models import Conversation
from tests.support.users import make_user

ROOT = Path(__file__).resolve().parent.parent
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json", "text/template"}
"""Script types a browser never runs (what `json_script` writes), so the policy does not apply to them."""
EXPECTED = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}


def directives(header: str) -> dict[str, list[str]]:
    """The policy as {directive: sources}."""
    parsed = {}
    for part in header.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


class BlockedMarkup(HTMLParser):
    """Collects what the policy blocks in a page or a template: `line: what`."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = self.getpos()[0]
        names = {name: value or "" for name, value in attrs}
        if tag == "script" and "src" not in names and names.get("type", "").lower() not in DATA_SCRIPT_TYPES:
            self.found.append(f"{where}: inline <script>")
        if tag == "style":
            self.found.append(f"{where}: <style> element")
        for name, value in names.items():
            if name.startswith("on") and name.isalpha() and len(name) > 2:
                self.found.append(f"{where}: {name}= handler")
            if name == "style":
                self.found.append(f"{where}: style= attribute")
            if value.strip().lower().startswith("javascript:"):
                self.found.append(f"{where}: javascript: URL in {name}")


def blocked_markup(html: str) -> list[str]:
    parser = BlockedMarkup()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.mark.parametrize(
    "sample",
    [
        "<script>alert(1)</script>",
        '<script type="module">import "/x.js";</script>',
        '<script type="text/javascript">x()</script>',
        '<button onclick="go()">Go</button>',
        '<body onload="start()">',
        '<a href="javascript:go()">Go</a>',
        "<style>p { color: red }</style>",
        '<p style="color: red">',
    ],
)
def test_the_check_recognises_what_the_policy_blocks(sample):
    assert blocked_markup(sample)


def test_the_check_lets_script_files_and_json_script_data_pass():
    page = (
        '<script type="module" src="/static/chat/app.js"></script>'
        '<script src="/static/admin/js/theme.js" defer></script>'
        '<script id="chat-config" type="application/json">{"conversationId": 1}</script>'
        '<link rel="stylesheet" href="/static/css/app.css"><a href="/online/">on</a>'
    )
    assert blocked_markup(page) == []


def test_no_template_holds_inline_script_handlers_or_styles():
    templates = sorted(ROOT.glob("templates/**/*.html"))

    assert len(templates) > 5
    found = {str(path.relative_to(ROOT)): blocked_markup(path.read_text()) for path in templates}
    assert {path: items for path, items in found.items() if items} == {}


@pytest.fixture
def pages(client) -> dict[str, object]:
    """Every kind of page the product serves, as served: anonymous, signed in, and the admin's."""
    root = make_user("root", is_staff=True, is_superuser=True)
    conversation = Conversation.objects.create(owner=root)
    anonymous = [reverse("login"), reverse("signup")]
    signed_in = [
        reverse("conversation_list"),
        reverse("conversation_list") + "?q=sum",
        reverse("conversation_detail", args=[conversation.pk]),
        reverse("api_tokens"),
        reverse("admin:index"),
        reverse("admin:conversations_conversation_changelist"),
        reverse("admin:conversations_conversation_change", args=[conversation.pk]),
        reverse("admin:conversations_conversation_usage"),
        reverse("admin:api_apitoken_changelist"),
        reverse("admin:auth_user_change", args=[root.pk]),
        reverse("admin:auth_user_add"),
    ]
    served = {url: client.get(url) for url in anonymous}
    client.force_login(root)
    served |= {url: client.get(url) for url in signed_in}
    assert {url: page.status_code for url, page in served.items()} == dict.fromkeys(served, 200)
    return served


@pytest.mark.django_db
def test_every_page_carries_the_policy(pages):
    policies = {url: directives(page.get("Content-Security-Policy", "")) for url, page in pages.items()}

    assert {url: policy for url, policy in policies.items() if policy != EXPECTED} == {}


def test_the_policy_runs_only_the_products_own_scripts_and_names_no_other_host():
    policy = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    sources = {source for values in policy.values() for source in values}

    assert policy["script-src"] == ["'self'"] and policy["default-src"] == ["'self'"]
    assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:"}
    assert [name for name, values in policy.items() if "'unsafe-inline'" in values] == ["style-src-attr"]
    assert [name for name, values in policy.items() if "data:" in values] == ["img-src"]


@pytest.mark.django_db
def test_no_page_served_holds_inline_script_or_handlers(pages):
    found = {url: blocked_markup(page.content.decode()) for url, page in pages.items()}

    assert {url: items for url, items in found.items() if items} == {}
