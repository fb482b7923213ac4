"""Formatting of fleet values for display: N/A, percentages, memory, power, ages, bars, sparklines.

Pure functions, shared by every screen, so that one value looks the same everywhere. They return
rich ``Text`` (safe in a DataTable cell, never parsed as markup) unless the name says ``_str``.
``None`` always means "unknown" and is shown as a dim N/A, never as 0. Anything that may come from
the cluster goes through ``opsconsole.text.literal``/``clean``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from opsconsole.text import clean, literal

NA = "N/A"
NA_STYLE = "dim"
HOT_C = 85.0  # the backend's default hot_temperature_c
WARM_C = 75.0

# Styles are plain ANSI colour names so they downsample cleanly to 256/16 colours and `linux`.
STATUS_STYLES: dict[str, str] = {
    "running": "green",
    "succeeded": "green",
    "ready": "green",
    "progressing": "cyan",
    "pending": "yellow",
    "paused": "magenta",
    "degraded": "bold red",
    "failed": "bold red",
    "notready": "bold red",
    "not ready": "bold red",
    "unknown": "dim",
}
SEVERITY_STYLES: dict[str, str] = {
    "critical": "bold red",
    "warning": "yellow",
    "info": "cyan",
}
EVENT_STYLES: dict[str, str] = {"warning": "bold yellow", "normal": ""}

BAR_USED = "█"  # used within quota
BAR_BORROWED = "▓"  # used beyond quota, lent by the cohort
BAR_OVER = "█"  # used beyond quota and not covered by borrowing (shown red)
BAR_PENDING = "▒"  # requested, waiting for quota
BAR_FREE = "░"  # quota not used
SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_GAP = "·"


def na() -> Text:
    """The dim N/A shown for every unknown value."""
    return Text(NA, style=NA_STYLE)


def text(value: object, style: str = "") -> Text:
    """Untrusted (or any) value as literal text; ``None`` becomes N/A."""
    if value is None:
        return na()
    return literal(value, style)


def model_name(model: object) -> Text:
    """A GPU product label without its vendor prefix (``H100-80GB-HBM3``), for narrow columns."""
    if model is None:
        return na()
    name = clean(model)
    for prefix in ("NVIDIA-", "NVIDIA "):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    return Text(name)


def number(value: float | int | None, digits: int = 0, unit: str = "") -> Text:
    """A number with a fixed number of decimals and an optional unit suffix."""
    if value is None or _nan(value):
        return na()
    return Text(f"{value:,.{digits}f}{unit}")


def percent(value: float | None, digits: int = 0) -> Text:
    """A 0-100 percentage such as ``87%``."""
    if value is None or _nan(value):
        return na()
    return Text(f"{value:.{digits}f}%")


def fraction_percent(value: float | None, digits: int = 0) -> Text:
    """A 0-1 fraction (DCGM engine activity) shown as a percentage."""
    return percent(None if value is None else value * 100.0, digits)


def mib_as_gib(mib: float | None, digits: int = 1) -> Text:
    """MiB (DCGM framebuffer units) shown in GiB: ``37.5 GiB``."""
    if mib is None or _nan(mib):
        return na()
    return Text(f"{mib / 1024.0:.{digits}f} GiB")


def memory(used_mib: float | None, total_mib: float | None) -> Text:
    """Used of total memory: ``37.5/80.0 GiB``; either side may be N/A."""
    if used_mib is None and total_mib is None:
        return na()
    out = Text()
    out.append_text(_gib_bare(used_mib))
    out.append("/")
    out.append_text(_gib_bare(total_mib))
    out.append(" GiB")
    return out


def watts(value: float | None) -> Text:
    """Power draw: ``312 W`` (``1.2 kW`` from 10 kW up, fleet sums)."""
    if value is None or _nan(value):
        return na()
    if value >= 10_000:
        return Text(f"{value / 1000.0:,.1f} kW")
    return Text(f"{value:.0f} W")


def celsius(value: float | None, hot: float = HOT_C) -> Text:
    """A temperature; hot (>= ``hot``) bold red, warm yellow."""
    if value is None or _nan(value):
        return na()
    return Text(f"{value:.0f}°C", style=temperature_style(value, hot))


def temperature_style(value: float | None, hot: float = HOT_C) -> str:
    if value is None:
        return NA_STYLE
    if value >= hot:
        return "bold red"
    if value >= hot - (HOT_C - WARM_C):
        return "yellow"
    return ""


def xid(value: int | None) -> Text:
    """The last XID error: 0 is ``-``, others bold red (an XID means a GPU fault)."""
    if value is None:
        return na()
    if value == 0:
        return Text("-", style="dim")
    return Text(str(value), style="bold red")


def ratio(part: int | None, whole: int | None) -> Text:
    """``3/8`` (ready replicas of wanted, used of quota)."""
    if part is None or whole is None:
        return na()
    style = "yellow" if part < whole else ""
    return Text(f"{part}/{whole}", style=style)


def flag(value: bool | None, yes: str = "yes", no: str = "no") -> Text:
    if value is None:
        return na()
    return Text(yes, style="green") if value else Text(no, style="bold red")


# -- time ------------------------------------------------------------------------------------------


def age_str(value: datetime | float | int | None, now: float | None = None) -> str:
    """How long ago (a datetime) or how long (seconds): ``45s``, ``3m``, ``2h``, ``5d``.

    ``now`` is a ``time.time()`` value; screens pass the app's clock so tests and screenshots
    with a frozen clock are deterministic.
    """
    if value is None:
        return NA
    if isinstance(value, datetime):
        current = time.time() if now is None else now
        seconds = current - value.timestamp()
    else:
        seconds = float(value)
    if _nan(seconds):
        return NA
    return duration_str(max(seconds, 0.0))


def age(value: datetime | float | int | None, now: float | None = None) -> Text:
    """``age_str`` as Text (N/A dim)."""
    if value is None:
        return na()
    return Text(age_str(value, now))


def duration_str(seconds: float) -> str:
    """Kubectl-like compact durations: one unit below a day, two above (``3d4h``)."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    days, hours = divmod(s // 3600, 24)
    if days >= 10 or hours == 0:
        return f"{days}d"
    return f"{days}d{hours}h"


# -- status ----------------------------------------------------------------------------------------


def status_style(status: object) -> str:
    """The style of a workload status, node readiness or pod phase (case-insensitive)."""
    return STATUS_STYLES.get(clean(status).strip().lower(), "")


def status(value: object) -> Text:
    """A status word in its colour; untrusted statuses stay literal."""
    if value is None:
        return na()
    return literal(value, status_style(value))


def severity_style(severity: object) -> str:
    return SEVERITY_STYLES.get(clean(severity).strip().lower(), "")


def severity(value: object) -> Text:
    if value is None:
        return na()
    return literal(value, severity_style(value))


def event_style(event_type: object) -> str:
    return EVENT_STYLES.get(clean(event_type).strip().lower(), "")


# -- bars and sparklines ---------------------------------------------------------------------------


def bar(
    used: int | float | None,
    total: int | float | None,
    width: int = 20,
    *,
    borrowed: int | float = 0,
    pending: int | float = 0,
) -> Text:
    """A usage-against-quota bar of ``width`` cells.

    Used within quota is ``█`` (green), usage beyond quota lent by the cohort (``borrowed``) is
    ``▓`` (yellow), usage beyond quota not covered by borrowing is ``█`` in red (over quota),
    pending requests ``▒`` (dim yellow), unused quota ``░`` (dim). The characters differ, so the
    bar still reads on a monochrome or NO_COLOR terminal. The scale grows past the quota when
    usage exceeds it, so over-quota is always visible.
    """
    width = max(int(width), 1)
    if used is None:
        return Text(NA.ljust(width)[:width], style=NA_STYLE)
    quota = max(float(total or 0), 0.0)
    used_f = max(float(used), 0.0)
    beyond = max(used_f - quota, 0.0)
    borrowed_f = min(max(float(borrowed or 0), 0.0), beyond)
    segments = [
        (min(used_f, quota), BAR_USED, "green"),
        (borrowed_f, BAR_BORROWED, "yellow"),
        (beyond - borrowed_f, BAR_OVER, "bold red"),
        (max(float(pending or 0), 0.0), BAR_PENDING, "dim yellow"),
        (max(quota - used_f, 0.0), BAR_FREE, "dim"),
    ]
    return stacked_bar(segments, width)


def stacked_bar(segments: Sequence[tuple[float, str, str]], width: int = 20) -> Text:
    """``width`` cells split between ``(amount, character, style)`` segments, in order.

    Every non-zero segment gets at least one cell (a single borrowed GPU stays visible).
    """
    width = max(int(width), 1)
    amounts = [max(float(amount), 0.0) for amount, _, _ in segments]
    scale = sum(amounts)
    out = Text()
    if scale <= 0:
        out.append(BAR_FREE * width, style="dim")
        return out
    for cells, (_, char, style) in zip(_apportion(amounts, scale, width), segments, strict=True):
        if cells:
            out.append(char * cells, style=style)
    return out


def _apportion(amounts: Sequence[float], scale: float, width: int) -> list[int]:
    """Split ``width`` cells between amounts (largest remainder); a non-zero amount gets >= 1."""
    exact = [a * width / scale for a in amounts]
    cells = [math.floor(x) for x in exact]
    for i, a in enumerate(amounts):
        if a > 0 and cells[i] == 0:
            cells[i] = 1
    # Trim or pad to exactly `width`, taking from / giving to the largest segments first.
    order = sorted(range(len(amounts)), key=lambda i: exact[i] - cells[i], reverse=True)
    while sum(cells) < width:
        for i in order:
            if amounts[i] > 0 and sum(cells) < width:
                cells[i] += 1
    while sum(cells) > width:
        i = max(range(len(cells)), key=lambda j: cells[j])
        cells[i] -= 1
    return cells


def usage_bar(
    used: int | None,
    quota: int | None,
    width: int = 20,
    *,
    borrowed: int = 0,
    pending: int = 0,
) -> Text:
    """A bar followed by ``used/quota`` and the borrowed/pending counts when non-zero."""
    out = bar(used, quota, width, borrowed=borrowed, pending=pending)
    out.append(" ")
    if used is None:
        return out
    over = quota is not None and used > quota and borrowed < used - quota
    out.append(f"{used}/{quota if quota is not None else '-'}", style="bold red" if over else "")
    if borrowed:
        out.append(f" +{borrowed} borrowed", style="yellow")
    if pending:
        out.append(f" {pending} pending", style="dim yellow")
    return out


def sparkline(values: Sequence[float | None], width: int = 20, maximum: float = 100.0) -> Text:
    """The last ``width`` samples as block characters on a fixed 0..maximum scale.

    Unknown samples (None) are gaps (a dim ``·``), not zeros; shorter histories are right-aligned
    so the newest sample is always at the right edge.
    """
    width = max(int(width), 0)
    recent = list(values)[-width:] if width else []
    out = Text(" " * (width - len(recent)))
    top = len(SPARK_CHARS) - 1
    for value in recent:
        if value is None or _nan(value):
            out.append(SPARK_GAP, style=NA_STYLE)
            continue
        level = min(max(float(value) / maximum, 0.0), 1.0) if maximum > 0 else 0.0
        out.append(SPARK_CHARS[round(level * top)], style=_spark_style(level))
    return out


def _spark_style(level: float) -> str:
    if level >= 0.85:
        return "green"
    if level <= 0.05:
        return "dim"
    return "cyan"


# -- helpers ---------------------------------------------------------------------------------------


def _gib_bare(mib: float | None) -> Text:
    if mib is None or _nan(mib):
        return na()
    return Text(f"{mib / 1024.0:.1f}")


def _nan(value: float | int) -> bool:
    return isinstance(value, float) and (math.isnan(value) or math.isinf(value))


def json_value(value: object) -> Text:
    """A value of a change (before or after): a string as it is, anything else as compact JSON;
    absent as a dim dash. Always literal text, on one line."""
    if value is None:
        return Text("—", style="dim")
    return literal(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
