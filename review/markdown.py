"""Model output as safe HTML for staff review: Markdown parsed by markdown-it-py, then cleaned by nh3.

Raw HTML in the text is not HTML: the parser runs with `html` off, so `<script>` shows as text.
Links keep only http, https and mailto URLs and open nothing on their own (`rel` is set); images
are never loaded: each becomes a text mark with its description and address.
"""

from __future__ import annotations

from collections.abc import Sequence

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code"),
    *("strong", "em", "del", "s", "a", "ul", "ol", "li", "span"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "span": {"class", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}
IMAGE_MARK = "image not loaded"


def _image_as_text(
    renderer: RendererHTML, tokens: Sequence[Token], index: int, options: OptionsDict, env: EnvType
) -> str:
    """An image is shown as a mark with its description and address, never fetched."""
    token = tokens[index]
    description = renderer.renderInlineAsText(token.children or [], options, env)
    address = token.attrGet("src") or ""
    shown = " — ".join(part for part in (description, str(address)) if part)
    return f'<span class="md-image" title="{IMAGE_MARK}">image: {escape(shown)}</span>'


_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
_parser.add_render_rule("image", _image_as_text)


def markdown_to_html(text: str) -> SafeString:
    """`text` (Markdown written by a model) as HTML that is safe to put in a page."""
    rendered = _parser.render(text)
    cleaned = nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return mark_safe(cleaned)  # cleaned by nh3 just above
