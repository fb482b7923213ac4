"""Untrusted text made safe for the screen.

Everything the console shows that comes from the cluster, telemetry or operators is data: it is
never parsed as Rich/Textual markup (``escape()`` misses cases such as ``[/``), and control
characters are removed so that an ESC sequence in a pod name cannot move the cursor, recolour the
terminal or break the layout.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls (tab and newline included: a cell is one line), DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """``text`` as a string with every C0/C1 control character (ESC included) removed.

    ``None`` becomes the empty string, anything else goes through ``str()``.
    """
    if text is None:
        return ""
    return _CONTROL.sub("", text if isinstance(text, str) else str(text))


def literal(text: object, style: str = "") -> Text:
    """A rich ``Text`` holding ``text`` cleaned and literally: never interpreted as markup."""
    return Text(clean(text), style=style, no_wrap=True, end="")
