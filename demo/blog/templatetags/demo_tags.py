"""``{% demo_computed %}``: mark that a cached template fragment rendered its body (a miss)."""

from __future__ import annotations

from django import template

from demo.instrument import mark_computed

register = template.Library()


@register.simple_tag
def demo_computed() -> str:
    """Record the render for the report; outputs nothing."""
    mark_computed()
    return ""
