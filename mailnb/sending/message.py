"""One recipient's message exactly as it goes out: rendered, with its unsubscribe links, List-Id,
threading and DKIM signature."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..compose.messages import build_message, list_id
from .campaign import Campaign
from .plan import Item


def links(campaign: Campaign, address: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    """A recipient's template context (``{{ unsubscribe_url }}`` and the campaign's data) and
    List-Unsubscribe headers (None for a transactional audience)."""
    unsub, secret = campaign.links_and_secret
    url, hdrs = unsub.links(address, campaign.name, secret)
    return ({**campaign.data, "unsubscribe_url": url},
            None if campaign.audience.transactional else hdrs)


def set_links(campaign: Campaign, it: Item) -> None:
    it.context, it.extra_headers = links(campaign, it.address)


def build(c: Campaign, item: Item, *, subject_prefix: str = "") -> tuple[bytes, str, Any]:
    """The message for one recipient exactly as it goes out: (bytes, Message-ID, rendered)."""
    if item.context is None:         # rendered by a worker process of the preflight
        set_links(c, item)
    rendered = item.rendered or c.template.render(
        item.values, row_id=item.row, default_footer=c.footer,
        default_footer_html=c.footer_html, context=item.context)
    if c.email_format == "text":
        rendered = replace(rendered, html=None)
    elif c.email_format == "html" and rendered.html is not None:
        rendered = replace(rendered, text=None)
    if subject_prefix:
        rendered = replace(rendered, subject=subject_prefix + rendered.subject)
    headers = dict(c.headers)
    if not any(k.lower() == "list-id" for k in headers):
        headers["List-Id"] = list_id(c.name, c.from_addr)
    if item.extra_headers:
        headers.update(item.extra_headers)
    if item.thread:
        headers["In-Reply-To"] = item.thread
        headers["References"] = item.thread
    data, message_id = build_message(
        rendered, from_addr=c.from_addr, to_addr=item.address, from_name=c.from_name,
        reply_to=c.reply_to, headers=headers, campaign=c.name, smtputf8=item.smtputf8)
    if c.dkim is not None:
        data = c.dkim.sign(data)
    return data, message_id, rendered
