"""Untrusted text made safe for the screen.

Everything the console shows that comes from the cluster, telemetry or operators is data: it is
never parsed as Rich/Textual markup (``escape()`` misses cases such as ``[/``), and it goes
through one sanitizer, ``clean``, so that nothing in it can move the cursor, recolour the
terminal or change the layout: C0/C1 control characters (ESC included) would drive the terminal;
Unicode format characters (zero-width joiners, bidi overrides and isolates, the BOM...) are
measured as zero cells by Rich but drawn differently by terminals, pushing borders and columns
off-screen; a newline or tab inside a cell would break its row. Long values are clipped by their
cell (an ellipsis), never allowed to widen a column.
"""

from __future__ import annotations

import re
import unicodedata

from rich.text import Text

# ASCII controls that are not whitespace (whitespace becomes a space below), and DEL.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_WHITESPACE = re.compile(r"\s+")
# Control, format (Cf: U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF...) and surrogates.
_DROPPED = frozenset({"Cc", "Cf", "Cs"})
CELL_WIDTH = 60  # the widest a cell of an auto-sized (panel) table may grow


def clean(text: object) -> str:
    """``text`` as one line of plain characters: control and format characters removed, every
    run of whitespace (newlines and tabs included) shown as one space.

    ``None`` becomes the empty string, anything else goes through ``str()``.
    """
    if text is None:
        return ""
    value = text if isinstance(text, str) else str(text)
    if value.isascii():
        value = _ASCII_CONTROL.sub("", value)
    else:
        value = "".join(
            ch for ch in value if ch.isspace() or unicodedata.category(ch) not in _DROPPED
        )
    return _WHITESPACE.sub(" ", value)


def literal(text: object, style: str = "") -> Text:
    """A rich ``Text`` holding ``text`` cleaned and literally: never interpreted as markup."""
    return Text(clean(text), style=style, no_wrap=True, end="")


def clip(cell: object, width: int = CELL_WIDTH) -> object:
    """A table cell no wider than ``width`` cells, clipped with an ellipsis (``Text`` cells
    keep their styles; other values are returned as they are)."""
    if isinstance(cell, Text) and cell.cell_len > width:
        clipped = cell.copy()
        clipped.truncate(width, overflow="ellipsis")
        return clipped
    return cell
