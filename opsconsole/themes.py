"""The console's dark and light themes.

Colours are picked to stay distinct after downsampling: on a 256-colour terminal each maps to a
close xterm cube colour, and on a 16-colour ``linux`` console the primary/accent/warning/error
colours land on different ANSI colours (blue, cyan, yellow, red) with enough contrast against the
background. Status colours in tables are ANSI names (``opsconsole.format``) and follow the
terminal's own palette.
"""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.theme import Theme

DARK = Theme(
    name="opsconsole-dark",
    primary="#5f87d7",  # xterm 68
    secondary="#5fafaf",  # xterm 73
    accent="#d7af5f",  # xterm 179
    warning="#ffaf00",  # xterm 214
    error="#ff5f5f",  # xterm 203
    success="#5faf5f",  # xterm 71
    foreground="#e4e4e4",  # xterm 254
    background="#121212",  # xterm 233
    surface="#1c1c1c",  # xterm 234
    panel="#303030",  # xterm 236
    dark=True,
)

LIGHT = Theme(
    name="opsconsole-light",
    primary="#005faf",  # xterm 25
    secondary="#008787",  # xterm 30
    accent="#af5f00",  # xterm 130
    warning="#af5f00",  # xterm 130
    error="#d70000",  # xterm 160
    success="#008700",  # xterm 28
    foreground="#1c1c1c",  # xterm 234
    background="#ffffff",  # xterm 231
    surface="#eeeeee",  # xterm 255
    panel="#d0d0d0",  # xterm 252
    dark=False,
)

THEMES = (DARK, LIGHT)


def register_themes(app: App[Any]) -> None:
    """Make both themes selectable (settings ``theme``, the command palette's theme picker)."""
    for theme in THEMES:
        app.register_theme(theme)
