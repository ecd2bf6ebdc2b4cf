"""Every page loads its scripts, styles and images from the product itself: no CDN, no other host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from conversations.models import Conversation
from tests.support.users import make_user

ROOT = Path(__file__).resolve().parent.parent
FROM_ELSEWHERE = re.compile(
    r"""<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|\bimport\b[^;"']*["']\s*(?:https?:)?//"""
    r"""|@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//"""
    r"""|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)
"""A tag, an ES module import or a CSS rule that fetches from an absolute or protocol-relative URL."""


def from_elsewhere(text: str) -> list[str]:
    return [match.group(0) for match in FROM_ELSEWHERE.finditer(text)]


@pytest.mark.parametrize(
    "sample",
    [
        '<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui-bundle.js"></script>',
        "<link rel='stylesheet' href='//unpkg.com/x.css'>",
        'import { a } from "https://esm.sh/a";',
        "@import url(http://fonts.example/f.css);",
    ],
)
def test_the_check_recognises_a_load_from_another_host(sample):
    assert from_elsewhere(sample)


def test_the_check_lets_the_products_own_and_inline_sources_pass():
    page = '<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns=\'http://www.w3.org/2000/svg\'">'
    assert not from_elsewhere(page + '<script type="module" src="/static/chat/app.js"></script>')


def test_no_template_or_static_file_loads_from_another_host():
    files = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/**/*.js"), *ROOT.glob("static/**/*.css")]

    assert len(files) > 5
    assert {
        str(f.relative_to(ROOT)): from_elsewhere(f.read_text()) for f in files if from_elsewhere(f.read_text())
    } == {}


@pytest.mark.django_db
def test_no_page_served_loads_from_another_host(client):
    anonymous = [reverse("login"), reverse("signup")]
    root = make_user("root", is_staff=True, is_superuser=True)
    conversation = Conversation.objects.create(owner=root)
    signed_in = [
        reverse("conversation_list"),
        reverse("conversation_detail", args=[conversation.pk]),
        reverse("api_tokens"),
        reverse("admin:index"),
        reverse("admin:conversations_conversation_change", args=[conversation.pk]),
    ]

    pages = {url: client.get(url) for url in anonymous}
    client.force_login(root)
    pages |= {url: client.get(url) for url in signed_in}

    assert {url: page.status_code for url, page in pages.items()} == dict.fromkeys(pages, 200)
    loaded_from_elsewhere = {url: from_elsewhere(page.content.decode()) for url, page in pages.items()}
    assert {url: found for url, found in loaded_from_elsewhere.items() if found} == {}
