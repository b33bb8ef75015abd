"""Job 2's text cleaning, alone in a leaf module: the servable applies it too, and carries no more than this."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Strip tags, unescape entities, turn `<br />` into a space and normalise whitespace."""
    if "<" in text or "&" in text:
        # A space for <br /> keeps "end.<br />Next" from fusing into "end.Next" (and never yields "br").
        text = BeautifulSoup(_BR.sub(" ", text), "html.parser").get_text()
    return " ".join(text.split())
