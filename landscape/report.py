"""One self-contained HTML page for one surface file or a comparison: figures, numbers, provenance.

Nothing on the page is fetched: figures are base64 PNGs, the data and the 3D viewer are inline,
and a Content-Security-Policy forbids any other source.  The static figures are plain images,
so the page still reads with JavaScript off; the viewer only adds to it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import plot
from .errors import LandscapeError
from .export import check_not_an_input
from .metrics import stats_to_jsonable
from .stats import HESSIAN_RATIO, PROVENANCE_KEYS, StatsOptions, compare_stats
from .storage import SurfaceData, read_extra, read_surface

# Grids finer than this (per axis) are thinned for the viewer to every k-th point, so the
# page stays small and dragging stays smooth; the static figures use every point.
VIEWER_MAX_POINTS = 121
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    titles: Sequence[str] | None = None,
    metric: str | None = None,
    *,
    radii: Sequence[float] | None = None,
    options: StatsOptions | None = None,
    dpi: int = 100,
) -> Path:
    """Write the report of the surface files in `paths` to `out`; returns the written path.

    The numbers are `stats.compare_stats(paths, titles, metric, radii, options=options)`, also
    embedded as JSON in <script id="landscape-stats">.
    """
    out = Path(out)
    if out.is_dir():
        raise LandscapeError(f"{out} is a folder; give the report a file name such as report.html")
    check_not_an_input(out, paths)
    if out.suffix.lower() not in (".html", ".htm"):
        raise LandscapeError(f"{out}: a report is an HTML page; name it *.html")
    runs, table = compare_stats(paths, titles, metric, radii, options=options)
    names = list(runs)
    surfs = [read_surface(p) for p in paths]
    name = runs[names[0]]["metric"]

    heading = "Loss landscape" if len(names) == 1 else "Loss landscapes"
    page_title = f"{heading}: {' vs '.join(names)}"
    body = [_header(page_title, names, name)]
    body.append(_numbers_section(runs, table))
    if len(surfs) > 1:
        body.append(_compare_section(surfs, names, name, dpi))
    for i, (title, surf, path) in enumerate(zip(names, surfs, paths, strict=True)):
        body.append(_run_section(i, title, surf, Path(path), runs[title], name, dpi))
    body.append(_environment_section())
    stats_json = _script_json(stats_to_jsonable(runs))
    body.append(f'<script type="application/json" id="landscape-stats">{stats_json}</script>')
    body.append(f"<script>{_VIEWER_JS}</script>")

    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(page_title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------- sections


def _header(title: str, names: list[str], metric: str) -> str:
    made = time.strftime("%Y-%m-%d %H:%M")
    links = ['<a href="#numbers">numbers</a>']
    if len(names) > 1:
        links.append('<a href="#compare">comparison</a>')
    links += [f'<a href="#run-{i}">{_e(t)}</a>' for i, t in enumerate(names)]
    links.append('<a href="#environment">made with</a>')
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">metric {_e(metric)} &middot; report made {_e(made)}</p>'
        f"<nav>{' &middot; '.join(links)}</nav></header>"
    )


def _numbers_section(runs: dict[str, dict[str, Any]], table: str) -> str:
    many = len(runs) > 1
    parts = [
        '<section id="numbers"><h2>Numbers</h2>',
        "<p>Each cell is <code>mean [low, high]</code>: the mean over the file's direction draws "
        "and a 95% percentile-bootstrap interval of that mean. With one draw, low = high = the "
        "value. "
        + (
            "The last column says whether the intervals of the first two runs overlap "
            "(<em>n/a</em> when a run has fewer than two finite draws). "
            if many
            else ""
        )
        + "docs/metrics.md defines every row; <code>landscape stats</code> prints the same "
        "table.</p>",
        f'<pre class="table">{_e(table)}</pre>',
        "<table><thead><tr><th></th>"
        + "".join(f"<th>{_e(t)}</th>" for t in runs)
        + "</tr></thead><tbody>",
    ]
    rows: list[tuple[str, list[str]]] = [
        ("grid", [_grid_text(r) for r in runs.values()]),
        ("direction draws", [str(r["repeats"]) for r in runs.values()]),
        ("values", [_values_text(r["values"]) for r in runs.values()]),
        ("direction cosines", [_cosine_text(r["directions"]) for r in runs.values()]),
        ("notes", ["; ".join(r["notes"]) or "none" for r in runs.values()]),
    ]
    for label, cells in rows:
        parts.append(
            f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
        )
    parts.append("</tbody></table></section>")
    return "\n".join(parts)


def _compare_section(surfs: list[SurfaceData], names: list[str], metric: str, dpi: int) -> str:
    head = '<section id="compare"><h2>Side by side</h2>'
    if len({s.ndim for s in surfs}) > 1:
        return (
            head + "<p>The files mix 1D and 2D surfaces, so there is no joint figure.</p></section>"
        )
    fig = plot.plot_compare(surfs, None, metric, names)
    what = "contours on one colour scale" if surfs[0].ndim == 2 else "curves on one axis"
    if any(s.repeats > 1 for s in surfs):
        what += ", the first direction draw of each"
    return head + _figure(fig, f"{metric}: {what}", dpi) + "</section>"


def _run_section(
    i: int,
    title: str,
    surf: SurfaceData,
    path: Path,
    stats: dict[str, Any],
    metric: str,
    dpi: int,
) -> str:
    parts = [f'<section id="run-{i}"><h2>{_e(title)}</h2>', f'<p class="meta">{_e(str(path))}</p>']
    draw = f" (draw 1 of {surf.repeats})" if surf.repeats > 1 and surf.ndim == 2 else ""
    figs = []
    if surf.ndim == 2:
        for kind, what in (("contour", "contours"), ("surface3d", "3D surface")):
            fig = plot.plot_surface(surf, kind, metric)
            figs.append(_figure(fig, f"{metric}: {what}{draw}", dpi))
        hess = _hessian_figure(surf, path, title)
        if hess is not None:
            figs.append(_figure(hess, "Hessian |λmin/λmax| (0 = locally convex)", dpi))
    else:
        one_metric = metric if surf.repeats > 1 else None  # one draw: every metric at once
        fig = plot.plot_surface(surf, "line", one_metric)
        figs.append(_figure(fig, "the line" + (" (all draws)" if surf.repeats > 1 else ""), dpi))
    parts.append('<div class="figures">' + "".join(figs) + "</div>")

    if surf.ndim == 2:
        parts.append(_viewer(i, surf, metric, draw))
    else:
        parts.append("<p>A 1D surface: the line above is the whole picture (no 3D view).</p>")

    prov = stats["provenance"]
    rows = [("file", str(path)), *((k, _text(k, prov.get(k))) for k in PROVENANCE_KEYS)]
    parts.append('<h3>Provenance</h3><table class="prov"><tbody>')
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    parts.append("</tbody></table>")

    config = surf.attrs.get("config")
    cfg_text = str(config) if config else "(the file holds no config)"
    parts.append(
        f'<details open><summary>Config</summary><pre class="config">{_e(cfg_text)}</pre></details>'
    )
    parts.append("</section>")
    return "\n".join(parts)


def _environment_section() -> str:
    versions = [
        ("landscape", _dist_version("landscape")),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("torch", _dist_version("torch")),
        ("matplotlib", _dist_version("matplotlib")),
        ("h5py", _dist_version("h5py")),
    ]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in versions)
    return (
        '<section id="environment"><h2>Made with</h2><p>The software that drew this page '
        "(each run's own versions are under its provenance).</p>"
        f'<table class="prov"><tbody>{cells}</tbody></table></section>'
    )


# --------------------------------------------------------------------------- pieces


def _figure(fig: Any, caption: str, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _hessian_figure(surf: SurfaceData, path: Path, title: str) -> Any | None:
    extra = read_extra(path)
    if HESSIAN_RATIO not in extra:
        return None
    arr = np.asarray(extra[HESSIAN_RATIO][0], dtype=np.float64)
    if arr.shape == (surf.repeats, *surf.shape) and surf.repeats > 1:
        arr = arr[0]
        title += f" (draw 1 of {surf.repeats})"
    if arr.shape != surf.shape or surf.y is None:
        return None  # stats.file_stats notes the mismatch
    return plot.plot_heatmap_array(
        surf.x,
        surf.y,
        np.abs(arr),
        f"{title}: Hessian curvature ratio",
        "|λmin / λmax|",
        xlabel=surf.axis_label(0),
        ylabel=surf.axis_label(1),
    )


def _viewer(i: int, surf: SurfaceData, metric: str, draw: str) -> str:
    one = surf.repeat(0) if surf.repeats > 1 else surf
    assert one.y is not None  # only 2D surfaces get a viewer
    step = max(1, math.ceil(max(len(one.x), len(one.y)) / VIEWER_MAX_POINTS))
    z = np.asarray(one.metrics[metric], dtype=np.float64)[::step, ::step]  # (ny, nx)
    data = {
        "metric": metric.replace("_", " "),
        "is_loss": plot.lower_is_better(metric),
        "x": one.x[::step].tolist(),
        "y": one.y[::step].tolist(),
        "z": [[float(v) if math.isfinite(v) else None for v in row] for row in z.tolist()],
        "xlabel": surf.axis_label(0),
        "ylabel": surf.axis_label(1),
    }
    thinned = f" (one grid point in {step} along each axis is shown)" if step > 1 else ""
    return (
        f"<h3>Interactive 3D view{_e(draw)}</h3>"
        f'<div class="viewer" data-surface="surface-{i}">'
        "<noscript><p>The 3D view needs JavaScript; the figures above show the same surface."
        "</p></noscript></div>"
        f'<p class="hint">Drag to rotate, scroll to zoom, double-click to reset; point at the '
        f"surface to read x, y and the value of the nearest grid point{_e(thinned)}.</p>"
        f'<script type="application/json" id="surface-{i}">{_script_json(data)}</script>'
    )


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element early (every <, > and & is escaped)."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _grid_text(run: dict[str, Any]) -> str:
    g = run["grid"]
    text = f"x {g['x'][0]:g}..{g['x'][1]:g} ({g['x'][2]} points)"
    if g["y"] is not None:
        text += f", y {g['y'][0]:g}..{g['y'][1]:g} ({g['y'][2]} points)"
    return text


def _values_text(v: dict[str, int]) -> str:
    return (
        f"{v['points']} points, {v['done']} computed, {v['nonfinite']} not finite "
        f"({v['nan']} NaN, {v['inf']} inf)"
    )


def _cosine_text(d: dict[str, Any] | None) -> str:
    if d is None:
        return "not measured"
    if math.isnan(d["max_abs_cosine"]):
        return f"{d['count']} direction, no pair to compare"
    return (
        f"max |cos| {d['max_abs_cosine']:.3g} among {d['count']} directions "
        f"(independent random directions of the same per-filter norms: about "
        f"{d['random_scale']:.2g})"
    )


def _text(key: str, v: Any) -> str:
    if v is None:
        return "not recorded in the file" if key.endswith("_version") else "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(u) for u in v)
    return str(v)


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px;
  padding: 0 1.2em 3em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; }
.meta, .hint { color: #555; font-size: .92em; } nav a { color: #2456a4; }
pre { background: #f6f6f8; padding: .8em; overflow-x: auto; font-size: 13px; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f6f6f8; } td { word-break: break-word; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
.viewer { max-width: 760px; } .viewer canvas { width: 100%; border: 1px solid #ddd;
  cursor: grab; touch-action: none; display: block; }
.viewer .readout { font: 13px monospace; min-height: 1.4em; margin-top: .3em; }
"""

# The 3D viewer: a painter's-algorithm height field on a <canvas>, no library.  Each
# div.viewer[data-surface] names the <script type="application/json"> holding its grid.
_VIEWER_JS = r"""
(function () {
  "use strict";
  // Viridis sampled at 9 even steps, linear in between.
  var STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
               [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  var HEIGHT = 1.2;  // height of the value axis, in units where the grid's wider side is 2

  function colour(t) {
    t = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
    var i = Math.min(Math.floor(t), STOPS.length - 2), f = t - i, a = STOPS[i], b = STOPS[i + 1];
    return "rgb(" + Math.round(a[0] + f * (b[0] - a[0])) + "," +
      Math.round(a[1] + f * (b[1] - a[1])) + "," + Math.round(a[2] + f * (b[2] - a[2])) + ")";
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }
  function fmt(v) {
    var a = Math.abs(v);
    return (a === 0 || (a >= 1e-3 && a < 1e5)) ? String(+v.toPrecision(4)) : v.toExponential(3);
  }

  // The top of the scale: for a loss, the largest value not above min + 5 * (median - min),
  // so that a few diverged points do not flatten the basin (the rule of plot.scales).
  function valueRange(vals, isLoss) {
    var s = vals.slice().sort(function (a, b) { return a - b; });
    var lo = s[0], hi = s[s.length - 1];
    if (isLoss) {
      var cap = lo + 5 * (s[Math.floor((s.length - 1) / 2)] - lo), i = s.length - 1;
      while (i > 0 && s[i] > cap) { i--; }
      hi = s[i];
    }
    return [lo, hi];
  }

  function Viewer(host, d) {
    var self = this, nx = d.x.length, ny = d.y.length, vals = [], iy, ix;
    this.d = d; this.host = host; this.pts = []; this.quads = [];
    d.z.forEach(function (row) { row.forEach(function (v) { if (isNum(v)) { vals.push(v); } }); });
    if (!vals.length) { host.textContent = "No finite values to show."; return; }
    var r = valueRange(vals, d.is_loss), span = (r[1] - r[0]) || 1;
    this.lo = r[0]; this.hi = r[1];
    // One scale for x and y keeps the grid's true aspect ratio.
    var xm = (d.x[0] + d.x[nx - 1]) / 2, ym = (d.y[0] + d.y[ny - 1]) / 2;
    var half = Math.max(d.x[nx - 1] - d.x[0], d.y[ny - 1] - d.y[0]) / 2 || 1;
    this.hidden = 0;
    for (iy = 0; iy < ny; iy++) {
      for (ix = 0; ix < nx; ix++) {
        var v = d.z[iy][ix], ok = isNum(v) && v <= this.hi;
        if (!ok) { this.hidden++; }
        this.pts.push({X: (d.x[ix] - xm) / half, Y: (d.y[iy] - ym) / half,
          Z: ok ? ((v - this.lo) / span - 0.5) * HEIGHT : 0, v: v, ok: ok, ix: ix, iy: iy});
      }
    }
    for (iy = 0; iy + 1 < ny; iy++) {
      for (ix = 0; ix + 1 < nx; ix++) {
        var q = [iy * nx + ix, iy * nx + ix + 1, (iy + 1) * nx + ix + 1, (iy + 1) * nx + ix];
        if (q.every(function (k) { return self.pts[k].ok; })) { this.quads.push(q); }
      }
    }
    this.canvas = document.createElement("canvas");
    this.out = document.createElement("div");
    this.out.className = "readout";
    host.appendChild(this.canvas);
    host.appendChild(this.out);
    this.reset();
    this.listen();
    this.resize();
    this.ok = true;
    host.setAttribute("data-viewer-ready", "1");
  }

  Viewer.prototype.reset = function () {
    this.yaw = -0.6; this.pitch = 0.55; this.zoom = 1; this.hover = null; this.show();
  };

  Viewer.prototype.resize = function () {
    var dpr = window.devicePixelRatio || 1;
    this.w = this.host.clientWidth || 640;
    this.h = Math.round(this.w * 0.7);
    this.canvas.width = Math.round(this.w * dpr);
    this.canvas.height = Math.round(this.h * dpr);
    this.canvas.style.height = this.h + "px";
    this.ctx = this.canvas.getContext("2d");
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.draw();
  };

  // Orthographic view: turn by yaw about the value axis, tilt by pitch towards the viewer.
  Viewer.prototype.project = function (X, Y, Z) {
    var ca = Math.cos(this.yaw), sa = Math.sin(this.yaw);
    var cb = Math.cos(this.pitch), sb = Math.sin(this.pitch);
    var s = Math.min(this.w, this.h) * 0.36 * this.zoom;
    var x = X * ca - Y * sa, y = X * sa + Y * ca;
    return [this.w / 2 + s * x, this.h / 2 - s * (Z * cb + y * sb), y * cb - Z * sb];
  };

  Viewer.prototype.line = function (a, b, label) {
    var ctx = this.ctx, p = this.project(a[0], a[1], a[2]), q = this.project(b[0], b[1], b[2]);
    ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke();
    ctx.fillText(label, q[0] + 4, q[1] + 4);
  };

  Viewer.prototype.draw = function () {
    var self = this, ctx = this.ctx, P = this.pts, i, p;
    ctx.clearRect(0, 0, this.w, this.h);
    for (i = 0; i < P.length; i++) {
      p = this.project(P[i].X, P[i].Y, P[i].Z);
      P[i].sx = p[0]; P[i].sy = p[1]; P[i].depth = p[2];
    }
    var b = -HEIGHT / 2, x0 = P[0].X, y0 = P[0].Y, last = P[P.length - 1];
    ctx.strokeStyle = "#888"; ctx.fillStyle = "#444"; ctx.font = "12px sans-serif";
    this.line([x0, y0, b], [last.X, y0, b], this.d.xlabel);
    this.line([x0, y0, b], [x0, last.Y, b], this.d.ylabel);
    this.line([x0, y0, b], [x0, y0, -b], this.d.metric);
    // Far quads first, so that near ones paint over them.
    var order = this.quads.map(function (q) {
      return [q, P[q[0]].depth + P[q[1]].depth + P[q[2]].depth + P[q[3]].depth];
    }).sort(function (u, w) { return w[1] - u[1]; });
    var edges = this.quads.length < 2500;
    ctx.lineWidth = 0.6;
    order.forEach(function (item) {
      var q = item[0], v = (P[q[0]].v + P[q[1]].v + P[q[2]].v + P[q[3]].v) / 4;
      var c = colour((v - self.lo) / ((self.hi - self.lo) || 1));
      ctx.beginPath();
      ctx.moveTo(P[q[0]].sx, P[q[0]].sy);
      for (var k = 1; k < 4; k++) { ctx.lineTo(P[q[k]].sx, P[q[k]].sy); }
      ctx.closePath();
      ctx.fillStyle = c; ctx.fill();
      ctx.strokeStyle = edges ? "rgba(0,0,0,0.25)" : c; ctx.stroke();
    });
    this.colourBar();
    if (this.hover) {
      ctx.beginPath(); ctx.arc(this.hover.sx, this.hover.sy, 5, 0, 2 * Math.PI);
      ctx.lineWidth = 2; ctx.strokeStyle = "#d62728"; ctx.stroke();
    }
  };

  Viewer.prototype.colourBar = function () {
    var ctx = this.ctx, x = this.w - 26, top = 20, h = this.h - 60, i;
    for (i = 0; i < h; i++) { ctx.fillStyle = colour(1 - i / h); ctx.fillRect(x, top + i, 12, 1); }
    ctx.fillStyle = "#444"; ctx.textAlign = "right";
    ctx.fillText(fmt(this.hi), x - 4, top + 10);
    ctx.fillText(fmt(this.lo), x - 4, top + h);
    ctx.textAlign = "left";
  };

  // The drawn grid point nearest to the pointer (within 16 px), the front one on a tie.
  Viewer.prototype.pick = function (mx, my) {
    var best = null, bd = 16 * 16;
    this.pts.forEach(function (p) {
      if (!p.ok) { return; }
      var d = (p.sx - mx) * (p.sx - mx) + (p.sy - my) * (p.sy - my);
      if (d < bd || (d === bd && best && p.depth < best.depth)) { bd = d; best = p; }
    });
    return best;
  };

  Viewer.prototype.show = function () {
    var p = this.hover, d = this.d;
    this.out.textContent = p
      ? "x = " + fmt(d.x[p.ix]) + ", y = " + fmt(d.y[p.iy]) + ", " + d.metric + " = " + fmt(p.v)
      : "colour and height from " + fmt(this.lo) + " to " + fmt(this.hi) + (this.hidden
        ? "; " + this.hidden + " points not finite or above the scale are left out" : "");
  };

  Viewer.prototype.request = function () {
    var self = this;
    if (this.pending) { return; }
    this.pending = true;
    window.requestAnimationFrame(function () { self.pending = false; self.draw(); });
  };

  Viewer.prototype.listen = function () {
    var self = this, c = this.canvas;
    c.addEventListener("pointerdown", function (e) {
      self.drag = [e.clientX, e.clientY];
      try { c.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer */ }
    });
    c.addEventListener("pointerup", function () { self.drag = null; });
    c.addEventListener("pointermove", function (e) {
      if (self.drag) {
        self.yaw += (e.clientX - self.drag[0]) * 0.01;
        self.pitch = clamp(self.pitch + (e.clientY - self.drag[1]) * 0.01, -1.55, 1.55);
        self.drag = [e.clientX, e.clientY];
        self.hover = null;
      } else {
        var r = c.getBoundingClientRect();
        self.hover = self.pick((e.clientX - r.left) * self.w / r.width,
                               (e.clientY - r.top) * self.h / r.height);
      }
      self.show(); self.request();
    });
    c.addEventListener("pointerleave", function () {
      self.hover = null; self.show(); self.request();
    });
    c.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.zoom = clamp(self.zoom * Math.exp(-e.deltaY * 0.0015), 0.3, 10);
      self.request();
    }, {passive: false});
    c.addEventListener("dblclick", function () { self.reset(); self.request(); });
  };

  function start() {
    var viewers = [];
    document.querySelectorAll("div.viewer[data-surface]").forEach(function (host) {
      var src = document.getElementById(host.getAttribute("data-surface"));
      var v = new Viewer(host, JSON.parse(src.textContent));
      if (v.ok) { viewers.push(v); }
    });
    window.addEventListener("resize", function () {
      viewers.forEach(function (v) { v.resize(); });
    });
    window.landscapeViewers = viewers;  // for scripting the page, and for its tests
    document.body.setAttribute("data-viewer-ready", String(viewers.length));
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
"""
