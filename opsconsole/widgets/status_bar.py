"""The status bar: which backend, who is operating, firing alerts, how old the data is, and the
link state.

Who is operating is who the backend says the token belongs to, with its role and tenant scope;
before it has said (or from a backend without identities) the local operator name. Checked
against the app's ``ConnectionState`` every second, so the age keeps counting even when no answer
arrives, and redrawn only when its text changes: while data arrives on time the age reads ``<5 s``
instead of flickering between 0 and 3 s, so an idle console sends nothing down the wire. The URL,
the operator and the tenants are outside text; they go in literally.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from backend.schemas import SyncReason
from opsconsole.connection import ConnectionState, Link, seconds_str
from opsconsole.identity import ADMIN, VIEWER
from opsconsole.shell import shell
from opsconsole.text import literal

LINK_STYLES = {
    Link.CONNECTING: "yellow",
    Link.CONNECTED: "green",
    Link.UNREACHABLE: "bold red",
    Link.ERROR: "bold red",
    Link.UNAUTHENTICATED: "bold red",
    Link.STARTING: "yellow",
}
SYNC_STATES = {  # no fleet data yet: why, as the link state says it
    SyncReason.SYNCING: ("● syncing", "bold yellow"),
    SyncReason.BUILDING: ("● syncing", "bold yellow"),
    SyncReason.CLUSTER_ERROR: ("● cluster not synced", "bold yellow"),
    SyncReason.CLUSTER_UNAUTHORIZED: ("● cluster refused", "bold red"),
}
ROLE_STYLES = {ADMIN: "bold magenta", VIEWER: "dim"}
SCOPE_SHOWN = 2  # tenants named in the status bar; the rest are counted


def scope_text(tenants: list[str]) -> str:
    """``team-a, team-b +3``: a long tenant scope must not push the link state off the line."""
    shown = ", ".join(tenants[:SCOPE_SHOWN]) or "no tenants"
    more = len(tenants) - SCOPE_SHOWN
    return shown + (f" +{more}" if more > 0 else "")


URL_MIN = 12  # cells of the backend URL kept on a narrow terminal
FRESH_AGE = 5.0  # seconds: younger data is shown as fresh, older with its age


def _age(age: float | None) -> str:
    if age is None:
        return "–"
    return f"<{seconds_str(FRESH_AGE)}" if age < FRESH_AGE else seconds_str(age)


def status_text(state: ConnectionState, width: int | None = None) -> Text:
    """One line: ``SANDBOX  backend URL  op alice operator (team-a)  ▲ 2 firing  data 3 s
    ● connected`` (the firing alerts from the backend's ``/info``, when there are some).

    Within ``width`` cells the URL gives way first (clipped with an ellipsis), so that the
    alerts, the data's age and the link state stay in sight on a small terminal."""
    url = literal(state.backend_url, style="bold")
    rest = Text(no_wrap=True, end="")
    rest.append("  op ")
    identity = state.identity
    if identity is None:
        rest.append_text(literal(state.operator, style="bold"))
    else:
        rest.append_text(literal(identity.operator, style="bold"))
        rest.append(" ")
        rest.append_text(literal(identity.role, style=ROLE_STYLES.get(identity.role, "bold")))
        if identity.tenants is not None:
            rest.append_text(literal(f" ({scope_text(identity.tenants)})", style="dim"))
    if state.read_only:
        rest.append(" read-only", style="bold cyan")
    firing = state.info.alerts_firing if state.info else None
    if firing:
        rest.append(f"  ▲ {firing} firing", style="bold red")
    rest.append("  data ")
    rest.append(_age(state.data_age()), style="bold")
    rest.append("  ")
    link = state.shown_link()
    freshness = state.info.freshness if state.info else None
    sync = state.sync()
    if link is Link.CONNECTED and sync is not None:
        rest.append(*SYNC_STATES[sync.reason])
    elif link is Link.CONNECTED and freshness is not None and freshness.cluster_problem:
        rest.append("● cluster stale" if freshness.synced else "● syncing", style="bold yellow")
    else:
        rest.append(f"● {link.value}", style=LINK_STYLES[link])
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    if state.sandbox:
        line.append(" SANDBOX ", style="bold black on yellow")
        line.append(" ")
    if width is not None:
        over = line.cell_len + url.cell_len + rest.cell_len - width
        if over > 0:
            url.truncate(max(URL_MIN, url.cell_len - over), overflow="ellipsis")
    line.append_text(url)
    line.append_text(rest)
    return line


class StatusBar(Widget):
    """A one-line bar above the footer, on every screen."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    _shown: Text | None = None

    def on_mount(self) -> None:
        self.set_interval(1.0, self.update_state)

    def update_state(self) -> None:
        """Redraw when the text would change (a repaint is bytes down the operator's SSH)."""
        if status_text(shell(self.app).connection, self.size.width) != self._shown:
            self.refresh()

    def render(self) -> Text:
        self._shown = status_text(shell(self.app).connection, self.size.width)
        return self._shown
