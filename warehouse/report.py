"""The warehouse at a glance: one self-contained HTML page with charts.

:func:`render_report` reads the published marts (one set, through
:func:`warehouse.marts.connect_marts`; never the DuckDB file) and the manifest (read-only)
and returns a page that works offline when opened from disk: plotly.js is inlined once,
every chart is a ``Plotly.newPlot`` call on data embedded in the page, and nothing is
fetched from anywhere. Sections:

* coverage: completeness per series (symbol and timeframe) and month, from the bars held
  (``bars_adjusted``) and the gaps found (``coverage_gaps``), with the gaps by class;
* quality: invalid, outlier and suspect bars per month (``bars_adjusted``) and the rows
  quarantined per month by reason (``quality_quarantine``);
* prices: one symbol's as-traded, split-adjusted and total-return closes with its
  ex-dates marked (``bars_adjusted``, ``corporate_actions``);
* pairs: one pair's spread with its Ornstein-Uhlenbeck mean and entry/exit bands, each
  test's band applied from the bar after its test date (point in time), and a backtest's
  entries and exits once a ``backtest*`` mart holds them;
* operations: recent ``duckmarket update`` runs and the bars vendors revised, and the
  registered model artifacts (manifest tables; shown only when they hold rows).

Plotly was chosen because its Python package ships the whole plotly.js bundle (no CDN, no
network, no Node), it draws heatmaps, step lines and stacked bars with hover details, and it
is maintained with frequent releases; Vega-Altair would need a second package for its JS.
"""

from __future__ import annotations

import bisect
import contextlib
import html
import json
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ingest.errors import DuckmarketError, InvalidInputError
from ingest.paths import DataPaths

from .marts import connect_marts, current_set

__all__ = ["ReportError", "render_report", "write_report"]

#: at most this many series (worst completeness first) in the coverage heatmap
MAX_SERIES = 120
#: at most this many bars (the latest) in the price chart
MAX_POINTS = 20_000
GAP_CLASSES = ("fetchable", "beyond_reach", "vendor_returned_nothing")
_CLASS_COLOURS = {
    "fetchable": "#f2a541",
    "beyond_reach": "#8c564b",
    "vendor_returned_nothing": "#7f7f7f",
}


class ReportError(DuckmarketError):
    """The report cannot be made (no published marts)."""


@dataclass
class Chart:
    key: str  # what it shows, stable: the page's data-chart attribute
    figure: Any  # plotly.graph_objects.Figure


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""  # HTML
    charts: list[Chart] = field(default_factory=list)
    body: str = ""  # HTML after the charts
    notes: list[str] = field(default_factory=list)  # plain text


# --- the page -------------------------------------------------------------------------------


def render_report(
    paths: DataPaths,
    *,
    symbol: str | None = None,
    pair: str | None = None,
    show_root: bool = True,
) -> str:
    """The report as one HTML page (str). ``symbol`` picks the price chart's symbol
    (default: the one with the most corporate actions), ``pair`` the pair chart's pair_id
    (default: the pair cointegrated most often); ``show_root=False`` leaves the data
    root's path out (the data server names no path of its machine). Raises
    :class:`ReportError` when no marts are published and :class:`InvalidInputError` for an
    unknown symbol or pair."""
    con = connect_marts(paths)
    try:
        names = _views(con)
        if not names:
            raise ReportError(
                f"no published marts under {paths.marts}: build the warehouse first "
                "(duckmarket build, or duckmarket demo for a synthetic one)"
            )
        sections = [
            _guarded("coverage", "Coverage", lambda: _coverage_section(con, names)),
            _guarded("quality", "Data quality", lambda: _quality_section(con, names)),
            _guarded("prices", "Prices", lambda: _price_section(con, names, symbol)),
            _guarded("pair", "Pair spread", lambda: _pair_section(con, names, pair)),
        ]
        header = _header(con, names, paths)
        if not show_root:
            header["root"] = "the data server's published marts"
    finally:
        con.close()
    with _manifest(paths) as m:
        sections += [s for s in (_updates_section(m), _artifacts_section(m)) if s is not None]
    return _page(header, sections)


def _guarded(key: str, title: str, make: Callable[[], Section]) -> Section:
    """The section, or a note saying why it could not be drawn (a mart of another shape
    than this code reads, e.g. published by an older build): one section never sinks the
    page."""
    try:
        return make()
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Section(
            key,
            title,
            notes=[f"Not shown: the marts could not be read ({first}); rebuild them."],
        )


def write_report(
    paths: DataPaths,
    out: str | os.PathLike[str] | None = None,
    *,
    symbol: str | None = None,
    pair: str | None = None,
) -> Path:
    """Render the report and write it to ``out`` (default ``<data>/report.html``) in one
    rename, so a browser never opens half a file."""
    text = render_report(paths, symbol=symbol, pair=pair)
    target = Path(out).expanduser() if out is not None else paths.root / "report.html"
    if target.is_dir():
        target = target / "report.html"
    if not target.parent.is_dir():
        raise InvalidInputError(f"cannot write {target}: {target.parent} is not a directory")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInputError(f"cannot write {target}: {exc.strerror}") from None
    return target


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #1f3b57; color: #fff; padding: 16px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 2px 0; font-size: 13px; opacity: 0.9; }
nav { padding: 8px 32px; background: #e9eef3; font-size: 14px; }
nav a { margin-right: 16px; color: #1f3b57; }
main { padding: 8px 32px 32px 32px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px 20px;
          margin: 16px 0; }
section h2 { font-size: 18px; margin: 4px 0 8px 0; }
.intro, .note { font-size: 13px; color: #555; }
.note { font-style: italic; }
.chart { width: 100%; min-height: 200px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: left;
         font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; }
"""

_CONFIG = {"responsive": True, "displaylogo": False}


def _page(header: dict[str, str], sections: list[Section]) -> str:
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>duckmarket report: {e(header['root'])}</title>",
        f"<style>{_CSS}</style>",
        # plotly.js, inlined once: the page needs nothing from the network
        f'<script type="text/javascript">{_script_safe(get_plotlyjs())}</script>',
        "</head><body>",
        "<header><h1>duckmarket report</h1>",
        *(f"<p>{e(k)}: {e(v)}</p>" for k, v in header.items() if k != "root"),
        f"<p>data root: {e(header['root'])}</p></header>",
        "<nav>",
        *(f'<a href="#{e(s.key)}">{e(s.title)}</a>' for s in sections),
        "</nav><main>",
    ]
    n = 0
    for s in sections:
        parts.append(f'<section id="{e(s.key)}"><h2>{e(s.title)}</h2>')
        if s.intro:
            parts.append(f'<p class="intro">{s.intro}</p>')
        for note in s.notes:
            parts.append(f'<p class="note">{e(note)}</p>')
        for chart in s.charts:
            n += 1
            div = f"chart-{n}"
            spec = pio.to_json(chart.figure, validate=False)
            parts.append(
                f'<div class="chart" id="{div}" data-chart="{e(chart.key)}"></div>'
                f'<script type="text/javascript">(function () {{ var f = {_script_safe(spec)}; '
                f'Plotly.newPlot("{div}", f.data, f.layout, {json.dumps(_CONFIG)}); }})();'
                "</script>"
            )
        parts.append(s.body)
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _script_safe(text: str) -> str:
    """Text that cannot end the <script> element it sits in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select view_name from duckdb_views() where not internal").fetchall()
    return {r[0] for r in rows}


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {r[0] for r in con.execute(f'describe "{view}"').fetchall()}


def _header(con: duckdb.DuckDBPyConnection, names: set[str], paths: DataPaths) -> dict[str, str]:
    out = {"root": str(paths.root)}
    published = current_set(paths)
    if published is not None:
        out["marts"] = f"set {published.build_id}, published {published.published_at[:19]} UTC"
    if "bars_adjusted" in names:
        with contextlib.suppress(duckdb.Error):  # another shape: the section says so
            symbols, bars, first, last = con.execute(
                "select count(distinct symbol), count(*), min(ts)::timestamp, "
                "max(ts)::timestamp from bars_adjusted"
            ).fetchone()
            out["holds"] = f"{symbols} symbol(s), {bars:,} bars, {_day(first)} to {_day(last)}"
    out["generated"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return out


def _day(value: datetime | date | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _missing(section: Section, *marts: str) -> Section:
    section.notes.append(
        f"Not shown: the published set has no {' / '.join(marts)} mart "
        "(a build that left it out); run duckmarket build."
    )
    return section


def _layout(fig: Any, *, height: int, title: str | None = None, **more: Any) -> Any:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 40 if title else 20, "b": 40},
        title={"text": title, "font": {"size": 14}} if title else None,
        legend={"orientation": "h", "y": -0.15},
        hovermode="closest",
        **more,
    )
    return fig


def _x(values: Sequence[datetime | date | None]) -> list[str | None]:
    """Timestamps as ISO text for a date axis (UTC; the date alone when at midnight)."""
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, datetime) and (v.hour, v.minute, v.second) != (0, 0, 0):
            out.append(f"{v:%Y-%m-%d %H:%M:%S}")
        else:
            out.append(f"{v:%Y-%m-%d}")
    return out


def _floats(values: Sequence[object]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


# --- coverage ---------------------------------------------------------------------------


def _coverage_section(con: duckdb.DuckDBPyConnection, names: set[str]) -> Section:
    import plotly.graph_objects as go

    s = Section(
        "coverage",
        "Coverage",
        "Completeness of each series per month: bars held / (bars held + bars missing "
        "from the exchange sessions). Hover a cell for its gaps by class: "
        "<b>fetchable</b> (re-run the ingest), <b>beyond_reach</b> (older than the vendor "
        "serves), <b>vendor_returned_nothing</b> (asked, and the vendor had nothing).",
    )
    if "bars_adjusted" not in names:
        return _missing(s, "bars_adjusted")
    has_gaps = "coverage_gaps" in names
    gaps_cte = (
        """select symbol, timeframe,
                  date_trunc('month', gap_start_at::timestamp)::date as month,
                  sum(missing_rows) as missing_rows,
                  count(*) filter (where gap_class = 'fetchable') as fetchable,
                  count(*) filter (where gap_class = 'beyond_reach') as beyond_reach,
                  count(*) filter (where gap_class = 'vendor_returned_nothing') as vendor_empty
           from (select distinct symbol, timeframe, gap_start_at, missing_rows, gap_class
                 from coverage_gaps)
           group by all"""
        if has_gaps
        else "select null::varchar as symbol, null::varchar as timeframe, null::date as month, "
        "0 as missing_rows, 0 as fetchable, 0 as beyond_reach, 0 as vendor_empty where false"
    )
    rows = con.execute(
        f"""
        with held as (
            select symbol, timeframe, date_trunc('month', ts::timestamp)::date as month,
                   count(*) as bars
            from bars_adjusted
            group by all
        ),
        gaps as ({gaps_cte}),
        cells as (
            select coalesce(held.symbol, gaps.symbol) as symbol,
                   coalesce(held.timeframe, gaps.timeframe) as timeframe,
                   coalesce(held.month, gaps.month) as month,
                   coalesce(held.bars, 0) as bars,
                   coalesce(gaps.missing_rows, 0) as missing_rows,
                   coalesce(gaps.fetchable, 0) as fetchable,
                   coalesce(gaps.beyond_reach, 0) as beyond_reach,
                   coalesce(gaps.vendor_empty, 0) as vendor_empty
            from held
            full outer join gaps
                on held.symbol = gaps.symbol and held.timeframe = gaps.timeframe
                and held.month = gaps.month
        )
        select *, bars / nullif(bars + missing_rows, 0) as completeness
        from cells
        order by symbol, timeframe, month
        """
    ).fetchall()
    if not rows:
        s.notes.append("No bars are held yet: ingest some data and build.")
        return s
    series: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        series.setdefault(f"{r[0]} · {r[1]}", []).append(r)
    overall = {
        k: sum(r[3] for r in v) / max(1, sum(r[3] + r[4] for r in v)) for k, v in series.items()
    }
    keep = sorted(series, key=lambda k: (overall[k], k))[:MAX_SERIES]
    if len(series) > MAX_SERIES:
        s.notes.append(
            f"{len(series)} series; the {MAX_SERIES} least complete are shown "
            "(duckmarket sql 'select * from coverage_summary' lists all)."
        )
    keep.sort()
    months = sorted({r[2] for k in keep for r in series[k]})
    col = {m: i for i, m in enumerate(months)}
    z = np.full((len(keep), len(months)), np.nan)
    text = [["" for _ in months] for _ in keep]
    for i, k in enumerate(keep):
        for r in series[k]:
            j = col[r[2]]
            z[i, j] = r[8] if r[8] is not None else np.nan
            classes = ", ".join(f"{n} {c}" for n, c in zip(r[5:8], GAP_CLASSES, strict=True) if n)
            text[i][j] = f"{r[3]:,} bars, {r[4]:,} missing" + (
                f"<br>gaps: {classes}" if classes else ""
            )
    labels = [f"{m:%Y-%m}" for m in months]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=keep,
            text=text,
            zmin=0.0,
            zmax=1.0,
            colorscale=[[0.0, "#b2182b"], [0.8, "#fddbc7"], [0.95, "#d1e5f0"], [1.0, "#2166ac"]],
            colorbar={"title": {"text": "complete"}, "tickformat": ".0%"},
            hovertemplate="%{y}<br>%{x}: %{z:.2%} complete<br>%{text}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    _layout(
        fig,
        height=max(260, 60 + 26 * len(keep)),
        xaxis={"type": "category", "title": "month (UTC)"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    s.charts.append(Chart("coverage-heatmap", fig))

    # gaps by class, per series
    if has_gaps:
        gap_rows = con.execute(
            """select symbol || ' · ' || timeframe as series, gap_class, count(*) as gaps,
                      sum(missing_rows) as missing_rows
               from coverage_gaps group by all order by all"""
        ).fetchall()
        if gap_rows:
            gf = go.Figure()
            classes = list(dict.fromkeys([*GAP_CLASSES, *(r[1] for r in gap_rows)]))
            for cls in classes:
                mine = [r for r in gap_rows if r[1] == cls]
                if not mine:
                    continue
                gf.add_bar(
                    name=str(cls),
                    x=[r[2] for r in mine],
                    y=[r[0] for r in mine],
                    orientation="h",
                    marker_color=_CLASS_COLOURS.get(str(cls), "#9467bd"),
                    customdata=[[r[3]] for r in mine],
                    hovertemplate="%{y}: %{x} gap(s), %{customdata[0]:,} bars missing"
                    f"<extra>{html.escape(str(cls))}</extra>",
                )
            series_n = len({r[0] for r in gap_rows})
            _layout(
                gf,
                height=max(220, 80 + 22 * series_n),
                title="gaps by class",
                barmode="stack",
                xaxis={"title": "gaps"},
                yaxis={"type": "category", "autorange": "reversed"},
            )
            s.charts.append(Chart("coverage-gap-classes", gf))
        else:
            s.notes.append("No gaps: every expected bar is held.")
    else:
        s.notes.append("No coverage_gaps mart is published: gap classes are not shown.")
    return s


# --- quality ------------------------------------------------------------------------------


def _quality_section(con: duckdb.DuckDBPyConnection, names: set[str]) -> Section:
    import plotly.graph_objects as go

    s = Section(
        "quality",
        "Data quality",
        "Bars flagged per month in <code>bars_adjusted</code> (<b>invalid</b>: a hard "
        "violation such as high below the close or a non-positive price; <b>outlier</b>: a "
        "close that jumps away and comes straight back; both kept, flagged) and the rows "
        "quarantined per month in <code>quality_quarantine</code>, by reason.",
    )
    if "bars_adjusted" not in names:
        return _missing(s, "bars_adjusted")
    first, last = con.execute(
        "select min(ts)::timestamp::date, max(ts)::timestamp::date from bars_adjusted"
    ).fetchone()
    span = _month_span(first, last)
    cols = _columns(con, "bars_adjusted")
    flags = [f for f in ("is_invalid", "is_outlier") if f in cols]
    if flags:
        counts = ", ".join(f"count(*) filter (where {f}) as {f}" for f in flags)
        rows = con.execute(
            f"""select date_trunc('month', ts::timestamp)::date as month, {counts}
                from bars_adjusted group by all order by month"""
        ).fetchall()
        fig = go.Figure()
        flagged = [r for r in rows if any(r[1:])]
        for i, f in enumerate(flags):
            label = f.removeprefix("is_")
            fig.add_bar(
                name=f"{label} ({sum(r[i + 1] for r in rows):,})",
                x=_x([r[0] for r in flagged]),
                y=[r[i + 1] for r in flagged],
                **_monthly_bars(),
                hovertemplate="%{x|%Y-%m}: %{y} bar(s)<extra>" + label + "</extra>",
            )
        _layout(
            fig,
            height=320,
            title="flagged bars per month",
            barmode="stack",
            xaxis={"type": "date", "title": "month (UTC)", "range": span},
            yaxis={"title": "bars", "rangemode": "tozero"},
        )
        if not flagged:
            s.notes.append("No bar is flagged invalid or outlier.")
        s.charts.append(Chart("quality-flags", fig))
    if "quality_quarantine" not in names:
        s.notes.append("No quality_quarantine mart is published.")
        return s
    rows = con.execute(
        """select date_trunc('month', ts::timestamp)::date as month,
                  dataset || ': ' || reason as what, count(*) as n
           from quality_quarantine where ts is not null group by all order by month, what"""
    ).fetchall()
    if not rows:
        s.notes.append("Nothing is quarantined.")
        return s
    fig = go.Figure()
    for what in sorted({r[1] for r in rows}):
        mine = [r for r in rows if r[1] == what]
        fig.add_bar(
            name=f"{what} ({sum(r[2] for r in mine):,})",
            x=_x([r[0] for r in mine]),
            y=[r[2] for r in mine],
            **_monthly_bars(),
            hovertemplate="%{x|%Y-%m}: %{y} row(s)<extra>" + html.escape(what) + "</extra>",
        )
    _layout(
        fig,
        height=320,
        title="quarantined rows per month",
        barmode="stack",
        xaxis={"type": "date", "title": "month (UTC)", "range": span},
        yaxis={"title": "rows", "rangemode": "tozero"},
    )
    s.charts.append(Chart("quality-quarantine", fig))
    by_reason = con.execute(
        """select dataset, disposition, reason, count(*) as n, min(ts)::timestamp,
                  max(ts)::timestamp
           from quality_quarantine group by all order by n desc, reason"""
    ).fetchall()
    s.body = _table(
        ["dataset", "disposition", "reason", "rows", "first", "last"],
        [(*r[:3], f"{r[3]:,}", _day(r[4]), _day(r[5])) for r in by_reason],
    )
    return s


def _month_span(first: date | None, last: date | None) -> list[str] | None:
    """A date axis range from the first bar's month to the end of the last bar's month."""
    if first is None or last is None:
        return None
    end = date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return [f"{first:%Y-%m}-01", f"{end:%Y-%m-%d}"]


def _monthly_bars() -> dict[str, Any]:
    """Bars one month wide, centred on their month (x is the month's first day)."""
    return {"xperiod": "M1", "xperiodalignment": "middle", "width": 25 * 86_400_000}


# --- prices and corporate actions -----------------------------------------------------------


def _price_section(con: duckdb.DuckDBPyConnection, names: set[str], symbol: str | None) -> Section:
    import plotly.graph_objects as go

    s = Section(
        "prices",
        "Raw and adjusted prices",
        "Closes as traded, split-adjusted and total-return adjusted (backward, base = the "
        "latest bar), on a log scale; splits are dotted lines, dividends triangles, at "
        "their ex-dates. Actions the build could not apply are grey crosses.",
    )
    if "bars_adjusted" not in names:
        if symbol is not None:
            raise InvalidInputError("no bars_adjusted mart is published: run duckmarket build")
        return _missing(s, "bars_adjusted")
    known = [
        r[0] for r in con.execute("select distinct symbol from bars_adjusted order by 1").fetchall()
    ]
    has_actions = "corporate_actions" in names
    if symbol is None:
        if not known:
            s.notes.append("No bars are held yet.")
            return s
        symbol = known[0]
        if has_actions:
            best = con.execute(
                """select symbol from corporate_actions
                   where symbol in (select distinct symbol from bars_adjusted)
                   group by symbol
                   order by count(*) filter (where action_type = 'split') desc, count(*) desc,
                            symbol
                   limit 1"""
            ).fetchone()
            symbol = best[0] if best else symbol
    elif symbol not in known:
        raise InvalidInputError(f"no bars of {symbol!r} in the marts ({_some(known)})")
    timeframes = dict(
        con.execute(
            "select timeframe, count(*) from bars_adjusted where symbol = ? group by all",
            [symbol],
        ).fetchall()
    )
    timeframe = "1d" if "1d" in timeframes else min(timeframes, key=lambda t: timeframes[t])
    bars = con.execute(
        """select ts::timestamp, close, close_split_adj, close_adj from (
               select * from bars_adjusted where symbol = ? and timeframe = ?
               order by ts desc limit ?)
           order by ts""",
        [symbol, timeframe, MAX_POINTS],
    ).fetchall()
    s.title = f"Raw and adjusted prices: {symbol} ({timeframe})"
    if timeframes[timeframe] > MAX_POINTS:
        s.notes.append(f"The latest {MAX_POINTS:,} of {timeframes[timeframe]:,} bars are shown.")
    x = _x([b[0] for b in bars])
    fig = go.Figure()
    for i, (label, colour) in enumerate(
        (("as traded", "#1f77b4"), ("split-adjusted", "#ff7f0e"), ("total return", "#2ca02c")),
        start=1,
    ):
        fig.add_scatter(
            x=x,
            y=_floats([b[i] for b in bars]),
            mode="lines",
            name=label,
            line={"color": colour, "width": 1.4},
            hovertemplate="%{x}: %{y:.4f}<extra>" + label + "</extra>",
        )
    actions: list[tuple[Any, ...]] = []
    if has_actions and bars:
        cols = _columns(con, "corporate_actions")
        valid = "is_valid" if "is_valid" in cols else "true"
        actions = con.execute(
            f"""with actions as (
                    select ex_date, action_type, split_ratio, cash_amount, {valid} as is_valid
                    from corporate_actions where symbol = ? and ex_date >= ?::date
                ),
                closes as (
                    select ts::timestamp::date as day, first(close order by ts) as close
                    from bars_adjusted where symbol = ? and timeframe = ? group by all
                )
                select actions.*, closes.close
                from actions asof left join closes on closes.day >= actions.ex_date
                order by ex_date""",
            [symbol, bars[0][0], symbol, timeframe],
        ).fetchall()
    for kind, marker, colour in (
        ("dividend", "triangle-down", "#9467bd"),
        ("split", "star", "#d62728"),
    ):
        mine = [a for a in actions if a[1] == kind and a[4]]
        if mine:
            fig.add_scatter(
                x=_x([a[0] for a in mine]),
                y=_floats([a[5] for a in mine]),
                mode="markers",
                name=f"{kind} ex-date ({len(mine)})",
                marker={"symbol": marker, "size": 9 if kind == "split" else 7, "color": colour},
                text=[_action_text(a) for a in mine],
                hovertemplate="%{x}: %{text}<extra></extra>",
            )
    for a in actions:
        if a[1] == "split" and a[4]:
            fig.add_vline(x=_x([a[0]])[0], line={"dash": "dot", "color": "#d62728", "width": 1})
    bad = [a for a in actions if not a[4]]
    if bad:
        fig.add_scatter(
            x=_x([a[0] for a in bad]),
            y=_floats([a[5] for a in bad]),
            mode="markers",
            name=f"not applied ({len(bad)})",
            marker={"symbol": "x", "size": 9, "color": "#7f7f7f"},
            text=[_action_text(a) for a in bad],
            hovertemplate="%{x}: %{text} (not applied)<extra></extra>",
        )
    _layout(
        fig,
        height=420,
        xaxis={"type": "date", "title": "UTC"},
        yaxis={"type": "log", "title": "close", "tickformat": ".4~g"},
    )
    s.charts.append(Chart("price-adjustment", fig))
    if not has_actions:
        s.notes.append("No corporate_actions mart is published: ex-dates are not marked.")
    elif not actions:
        s.notes.append(f"{symbol} has no corporate actions in this range.")
    return s


def _action_text(a: tuple[Any, ...]) -> str:
    if a[1] == "split":
        return f"split {a[2]:g} for 1" if a[2] is not None else "split"
    if a[1] == "dividend":
        return f"dividend {a[3]:g}" if a[3] is not None else "dividend"
    return str(a[1])


def _some(values: Sequence[str], n: int = 8) -> str:
    if not values:
        return "none are held"
    shown = ", ".join(values[:n])
    return f"known: {shown}" + (f" and {len(values) - n} more" if len(values) > n else "")


# --- pairs ----------------------------------------------------------------------------------


def _pair_section(con: duckdb.DuckDBPyConnection, names: set[str], pair: str | None) -> Section:
    import plotly.graph_objects as go

    s = Section(
        "pair",
        "Pair spread and Ornstein-Uhlenbeck bands",
        "The spread price_a - beta * price_b - alpha with the hedge of the latest "
        "cointegration test before each bar, its OU mean and entry / exit bands (each test's "
        "bands start the bar after its test date: what a trader knew then). Breaks in the "
        "bands: the spread was not mean-reverting in that test's window.",
    )
    if "pair_spreads" not in names:
        if pair is not None:
            raise InvalidInputError("no pair_spreads mart is published: run duckmarket build")
        return _missing(s, "pair_spreads")
    known = [
        r[0] for r in con.execute("select distinct pair_id from pair_spreads order by 1").fetchall()
    ]
    has_ou = "pair_ou_parameters" in names
    if pair is None:
        if not known:
            s.notes.append("No pair has spreads yet (see seeds/pairs.csv and pair_universe).")
            return s
        pair = known[0]
        if has_ou:
            best = con.execute(
                """select pair_id from pair_ou_parameters
                   where pair_id in (select distinct pair_id from pair_spreads)
                   group by pair_id
                   order by count(*) filter (where is_cointegrated) desc, pair_id limit 1"""
            ).fetchone()
            pair = best[0] if best else pair
    else:
        wanted = pair.strip().replace("/", "_").replace(",", "_").replace(" ", "")
        if wanted not in known:
            raise InvalidInputError(f"no pair {pair!r} in pair_spreads ({_some(known)})")
        pair = wanted
    timeframe = con.execute(
        "select timeframe from pair_spreads where pair_id = ? group by 1 order by count(*) desc",
        [pair],
    ).fetchone()[0]
    if has_ou:
        rows = con.execute(
            """select spreads.ts::timestamp as ts,
                      spreads.price_a - ou.hedge_beta * spreads.price_b - ou.hedge_alpha,
                      ou.mu, ou.entry_upper, ou.entry_lower, ou.exit_upper, ou.exit_lower,
                      ou.test_date
               from (select * from pair_spreads where pair_id = ? and timeframe = ?) as spreads
               asof left join (select * from pair_ou_parameters
                               where pair_id = ? and timeframe = ?) as ou
                   on spreads.ts > ou.test_ts
               order by spreads.ts""",
            [pair, timeframe, pair, timeframe],
        ).fetchall()
    else:
        rows = [
            (r[0], r[1], None, None, None, None, None, None)
            for r in con.execute(
                """select ts::timestamp, ols_spread from pair_spreads
                   where pair_id = ? and timeframe = ? order by ts""",
                [pair, timeframe],
            ).fetchall()
        ]
        s.notes.append("No pair_ou_parameters mart is published: the rolling OLS spread is shown.")
    rows = rows[-MAX_POINTS:]
    s.title = f"Pair spread and OU bands: {pair} ({timeframe})"
    x = _x([r[0] for r in rows])
    spread = _floats([r[1] for r in rows])
    fig = go.Figure()
    band_style = (
        ("entry upper", 3, "#d62728", "dash"),
        ("exit upper", 5, "#2ca02c", "dot"),
        ("OU mean", 2, "#555555", "solid"),
        ("exit lower", 6, "#2ca02c", "dot"),
        ("entry lower", 4, "#d62728", "dash"),
    )
    for label, i, colour, dash in band_style if has_ou else ():
        fig.add_scatter(
            x=x,
            y=_floats([r[i] for r in rows]),
            mode="lines",
            name=label,
            line={"color": colour, "dash": dash, "width": 1, "shape": "hv"},
            connectgaps=False,
            hovertemplate="%{x}: %{y:.4f}<extra>" + label + "</extra>",
        )
    fig.add_scatter(
        x=x,
        y=spread,
        mode="lines",
        name="spread",
        line={"color": "#1f77b4", "width": 1.3},
        hovertemplate="%{x}: %{y:.4f}<extra>spread</extra>",
    )
    events = _backtest_events(con, names, pair)
    if events is None:
        s.notes.append(
            "No backtest is published yet: entries and exits will be marked here once a "
            "backtest mart (backtest_*, with pair_id, entry_ts and exit_ts) exists."
        )
    else:
        times = [r[0] for r in rows]
        for kind, marker, colour in (("entry", "triangle-up", "#ff7f0e"), ("exit", "x", "#000")):
            when = [t for k, t in events if k == kind]
            # each marker sits on the spread of the last bar at or before its time
            at = [bisect.bisect_right(times, t) - 1 for t in when]
            fig.add_scatter(
                x=_x(when),
                y=np.array([spread[i] if i >= 0 else math.nan for i in at], dtype=np.float64),
                mode="markers",
                name=f"backtest {kind} ({len(when)})",
                marker={"symbol": marker, "size": 10, "color": colour},
                hovertemplate="%{x}<extra>" + kind + "</extra>",
            )
    _layout(fig, height=420, xaxis={"type": "date", "title": "UTC"}, yaxis={"title": "spread"})
    s.charts.append(Chart("pair-spread", fig))
    return s


def _backtest_events(
    con: duckdb.DuckDBPyConnection, names: set[str], pair: str
) -> list[tuple[str, datetime]] | None:
    """(entry|exit, ts) of the pair's trades in a published backtest mart; None when no
    backtest mart with pair_id, entry_ts and exit_ts is published."""
    for name in sorted(n for n in names if n.startswith("backtest")):
        cols = _columns(con, name)
        if {"pair_id", "entry_ts", "exit_ts"} <= cols:
            rows = con.execute(
                f'select entry_ts::timestamp, exit_ts::timestamp from "{name}" where pair_id = ?',
                [pair],
            ).fetchall()
            return [("entry", r[0]) for r in rows if r[0] is not None] + [
                ("exit", r[1]) for r in rows if r[1] is not None
            ]
    return None


# --- operations: update runs, revisions, model artifacts -------------------------------------


@contextlib.contextmanager
def _manifest(paths: DataPaths) -> Iterator[sqlite3.Connection | None]:
    """The manifest opened read-only (None when there is none or it cannot be read): the
    report never writes to it and never creates it."""
    if not paths.manifest.exists():
        yield None
        return
    try:
        con = sqlite3.connect(f"{paths.manifest.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        con.execute("pragma busy_timeout=5000")
    except sqlite3.Error:
        yield None
        return
    try:
        yield con
    finally:
        con.close()


def _rows(
    con: sqlite3.Connection, table: str, where: str, *, select: str = "*", tail: str = ""
) -> list[dict[str, Any]]:
    """``select <select> from <table> <where> <tail>`` as dicts; [] when the table is missing
    or cannot be read (a manifest older or newer than this code)."""
    try:
        exists = con.execute(
            "select 1 from sqlite_master where type = 'table' and name = ?", (table,)
        ).fetchone()
        if not exists:
            return []
        cur = con.execute(f"select {select} from {table} {where} {tail}")
    except sqlite3.Error:
        return []
    cols = [d[0] for d in cur.description or ()]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _when(us: object) -> str:
    """Integer microseconds since the epoch (UTC) as text; anything else as it is."""
    if isinstance(us, int) and not isinstance(us, bool):
        try:
            t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
        except OverflowError:
            return str(us)
        return f"{t:%Y-%m-%d %H:%M:%S}"
    return "" if us is None else str(us)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _updates_section(con: sqlite3.Connection | None) -> Section | None:
    import plotly.graph_objects as go

    if con is None:
        return None
    runs = _rows(con, "update_runs", "", tail="order by run_id desc limit 30")
    if not runs:
        return None
    s = Section(
        "updates",
        "Recent update runs and vendor revisions",
        "The latest <code>duckmarket update</code> runs (newest first in the table) and "
        "the bars a vendor changed when they were downloaded again.",
    )
    runs.reverse()
    labels = [f"#{r.get('run_id')} {_when(r.get('started_at'))[:16]}" for r in runs]
    colours = {"ok": "#2ca02c", "partial": "#ff7f0e", "failed": "#d62728", "killed": "#7f7f7f"}
    fig = go.Figure()
    fig.add_bar(
        name="rows fetched",
        x=labels,
        y=[_int(r.get("fetched_rows")) for r in runs],
        marker_color=[colours.get(str(r.get("status")), "#1f77b4") for r in runs],
        text=[str(r.get("status")) for r in runs],
        hovertemplate="%{x}: %{y:,} rows fetched (%{text})<extra></extra>",
    )
    fig.add_scatter(
        name="bars revised",
        x=labels,
        y=[_int(r.get("revised_rows")) for r in runs],
        mode="lines+markers",
        yaxis="y2",
        line={"color": "#9467bd"},
        hovertemplate="%{x}: %{y:,} bar(s) revised<extra></extra>",
    )
    _layout(
        fig,
        height=320,
        title="rows fetched (bars, coloured by status) and bars revised per run",
        xaxis={"type": "category"},
        yaxis={"title": "rows fetched", "rangemode": "tozero"},
        yaxis2={
            "title": "revised",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "tickformat": ",d",  # whole bars
            "dtick": max(1, math.ceil(max(_int(r.get("revised_rows")) for r in runs) / 5)),
        },
    )
    s.charts.append(Chart("update-runs", fig))
    table = []
    for r in reversed(runs):
        start, end = r.get("started_at"), r.get("finished_at")
        took = (
            f"{(end - start) / 1e6:.1f} s"
            if isinstance(start, int) and isinstance(end, int)
            else ""
        )
        table.append(
            (
                r.get("run_id"),
                _when(start),
                took,
                r.get("status"),
                r.get("series"),
                f"{_int(r.get('fetched_rows')):,}",
                f"{_int(r.get('revised_rows')):,}",
                r.get("build_id") if r.get("build_id") is not None else "",
            )
        )
    s.body = _table(
        ["run", "started (UTC)", "took", "status", "series", "fetched", "revised", "build"], table
    )
    counts = {
        (r["source"], r["symbol"], r["timeframe"]): _int(r["n"])
        for r in _rows(
            con,
            "revisions",
            "",
            select="source, symbol, timeframe, count(*) as n",
            tail="group by source, symbol, timeframe order by n desc limit 40",
        )
    }
    if counts:
        rf = go.Figure()
        keys = list(counts)
        rf.add_bar(
            x=[f"{k[1]} · {k[2]} ({k[0]})" for k in keys],
            y=[counts[k] for k in keys],
            marker_color="#9467bd",
            hovertemplate="%{x}: %{y:,} revised bar(s)<extra></extra>",
        )
        _layout(
            rf,
            height=300,
            title="revised bars per series (all runs)",
            xaxis={"type": "category"},
            yaxis={"title": "bars", "rangemode": "tozero"},
        )
        s.charts.append(Chart("revisions", rf))
        latest = _rows(con, "revisions", "", tail="order by detected_at desc, ts desc limit 30")
        s.body += "<h3>latest revisions</h3>" + _table(
            ["run", "series", "bar (UTC)", "change", "detected (UTC)"],
            [
                (
                    r.get("run_id"),
                    f"{r.get('source')} {r.get('symbol')} {r.get('timeframe')}",
                    _when(r.get("ts")),
                    _change(r.get("old_json"), r.get("new_json")),
                    _when(r.get("detected_at")),
                )
                for r in latest
            ],
        )
    else:
        s.notes.append("No vendor revisions recorded.")
    return s


def _change(old: object, new: object) -> str:
    """``close 101.2 -> 101.5, volume ...`` from two JSON objects (either may be null)."""

    def load(v: object) -> dict[str, Any] | None:
        if v is None:
            return None
        try:
            value = json.loads(str(v))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    a, b = load(old), load(new)
    if a is None and b is None:
        return ""
    if a is None:
        return "added"
    if b is None:
        return "removed"
    diffs = [
        f"{k} {_num(a.get(k))} → {_num(b.get(k))}"
        for k in dict.fromkeys([*a, *b])
        if a.get(k) != b.get(k) and k not in ("ingested_at",)
    ]
    return ", ".join(diffs[:4]) + (" …" if len(diffs) > 4 else "") if diffs else "unchanged"


def _num(v: object) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _artifacts_section(con: sqlite3.Connection | None) -> Section | None:
    if con is None:
        return None
    rows = _rows(con, "model_artifacts", "", tail="order by artifact_id desc limit 50")
    if not rows:
        return None
    files = {}
    with contextlib.suppress(sqlite3.Error):
        files = dict(
            con.execute(
                "select artifact_id, count(*) from model_artifact_files group by artifact_id"
            ).fetchall()
        )
    table = []
    for r in rows:
        split = None
        with contextlib.suppress(TypeError, ValueError):
            split = json.loads(r.get("split_json") or "null")
        metrics = {}
        with contextlib.suppress(TypeError, ValueError):
            metrics = json.loads(r.get("metrics_json") or "{}")
        table.append(
            (
                r.get("artifact_id"),
                f"{r.get('name')} {r.get('version')}",
                r.get("model_type"),
                r.get("feature_set"),
                (
                    f"{split.get('split_id')} (train to {str(split.get('train_end_ts'))[:10]})"
                    if isinstance(split, dict)
                    else "-"
                ),
                files.get(r.get("artifact_id"), 0),
                " ".join(f"{k}={_num(v)}" for k, v in list(metrics.items())[:4])
                if isinstance(metrics, dict)
                else "",
                str(r.get("sha256", ""))[:12],
                _when(r.get("registered_at")),
            )
        )
    return Section(
        "artifacts",
        "Model artifacts",
        "Trained models registered with <code>duckmarket artifacts register</code>, each "
        "traced to its feature set, walk-forward split and lake files "
        "(<code>duckmarket artifacts show ID</code>).",
        body=_table(
            ["id", "model", "type", "feature set", "split", "files", "metrics", "sha256",
             "registered (UTC)"],
            table,
        ),
    )  # fmt: skip
