"""Tests of landscape.report: one self-contained page whose numbers are those of landscape.stats."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from landscape import report
from landscape.errors import LandscapeError
from landscape.metrics import stats_to_jsonable
from landscape.stats import compare_stats, file_stats
from landscape.storage import SurfaceWriter, create_surface_file, write_extra

X = np.linspace(-1.0, 1.0, 21)
Y = np.linspace(-0.5, 0.5, 11)  # not square, so a swapped axis shows up
CONFIG = (
    "model:\n  name: tiny\n  note: a <b>bold</b> & risky value\nsurface:\n  grid: [-1, 1, 21]\n"
)
TITLES = ["bowl run", "rough <run>"]


def write_surface(
    path: Path, z: np.ndarray, x: np.ndarray = X, y: np.ndarray | None = Y, **attrs: object
) -> Path:
    """A finished one-draw surface file holding `z` as train_loss (and z + 0.2 as test_loss)."""
    rng = np.random.default_rng(0)
    directions = [[{"fc.weight": rng.normal(size=(3, 4))} for _ in range(1 if y is None else 2)]]
    attrs = {"title": path.stem, "model": "tiny", "checkpoint_sha256": "5e" * 32, **attrs}
    create_surface_file(path, x, y, ["train_loss", "test_loss"], directions, attrs)
    # NaN points stay not computed (not done); every other point is written.
    computed = ~np.isnan(z)
    index = np.nonzero(computed)
    with SurfaceWriter(path) as w:
        w.write({"train_loss": z[computed], "test_loss": z[computed] + 0.2}, index)
    return path


def bowl() -> np.ndarray:
    xx, yy = np.meshgrid(X, Y)  # (ny, nx)
    return xx**2 + 2 * yy**2 + 0.1


def rough() -> np.ndarray:
    xx, yy = np.meshgrid(X, Y)
    z = bowl() + 0.08 * np.sin(14 * xx) * np.cos(11 * yy)
    z[2, 3] = np.nan  # not computed
    z[0, 20] = np.inf  # diverged
    return z


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("report")
    bowl_h5 = write_surface(d / "bowl.h5", bowl(), config=CONFIG, torch_version="2.4.0")
    rough_h5 = write_surface(d / "rough.h5", rough(), config=CONFIG, title="rough")
    x = np.linspace(-0.5, 1.5, 21)
    line_h5 = write_surface(d / "line.h5", 1 - (x - 0.5) ** 2, x=x, y=None, dir_kind="line")
    one = report.write_report([bowl_h5], d / "one.html")
    two = report.write_report([bowl_h5, rough_h5], d / "out" / "two.html", titles=TITLES)
    return {"bowl": bowl_h5, "rough": rough_h5, "line": line_h5, "one": one, "two": two}


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script> and <pre> by id/class."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        self.stack: list[str] = []
        self.blocks: list[tuple[str, dict[str, str], str]] = []
        self._open: tuple[str, dict[str, str]] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a, tuple(self.stack)))
        if tag in ("script", "pre"):
            self._open = (tag, a)
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.blocks.append((*self._open, data))
            self._open = None

    def block(self, tag: str, **attrs: str) -> list[str]:
        return [
            t
            for g, a, t in self.blocks
            if g == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def page(path: Path) -> tuple[str, Tags]:
    text = path.read_text(encoding="utf-8")
    return text, Tags(text)


def images(tags: Tags) -> list[bytes]:
    out = []
    for tag, a, _ in tags.tags:
        if tag == "img":
            assert a["src"].startswith("data:image/png;base64,")
            out.append(base64.b64decode(a["src"].split(",", 1)[1]))
    return out


@pytest.mark.parametrize("which", ["one", "two"])
def test_self_contained(files: dict[str, Path], which: str) -> None:
    text, tags = page(files[which])
    assert re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I) is None
    for tag, a, _ in tags.tags:
        if "src" in a:
            assert a["src"].startswith("data:"), (tag, a["src"][:40])
        if "href" in a:
            assert a["href"].startswith("#"), (tag, a["href"])
        assert tag not in ("link", "iframe", "object", "embed")
    csp = [
        a["content"] for t, a, _ in tags.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and csp[0].startswith("default-src 'none'")
    assert "url(" not in text and "@import" not in text
    # The viewer's code is inline, once per page.
    assert text.count("function Viewer(") == 1


def test_embedded_stats_equal_stats_module(files: dict[str, Path]) -> None:
    _, tags = page(files["two"])
    (embedded,) = tags.block("script", id="landscape-stats")
    runs, table = compare_stats([files["bowl"], files["rough"]], titles=TITLES)
    assert json.loads(embedded) == json.loads(json.dumps(stats_to_jsonable(runs)))
    assert list(json.loads(embedded)) == TITLES
    got = json.loads(embedded)["rough <run>"]
    assert got["values"] == {"points": 231, "done": 230, "nonfinite": 2, "nan": 1, "inf": 1}
    # The table on the page is the one `landscape stats` prints, character for character.
    assert tags.block("pre", **{"class": "table"}) == [table]
    assert "bowl run vs rough <run>" in table

    _, tags = page(files["one"])
    (embedded,) = tags.block("script", id="landscape-stats")
    alone = json.loads(json.dumps(stats_to_jsonable(file_stats(files["bowl"]))))
    assert json.loads(embedded) == {"bowl": alone}
    assert alone["stats"]["curvature_d1"]["mean"] == pytest.approx(2.0)


def test_figures_embedded(files: dict[str, Path]) -> None:
    from matplotlib.image import imread

    pngs = {k: images(page(files[k])[1]) for k in ("one", "two")}
    assert len(pngs["one"]) == 2  # contour and 3D
    assert len(pngs["two"]) == 5  # the comparison, then contour and 3D of each run
    for png in pngs["one"] + pngs["two"]:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        img = imread(io.BytesIO(png))
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img[..., :3].std() > 0.05  # something is drawn, not a blank image


def test_config_provenance_and_escaping(files: dict[str, Path]) -> None:
    text, tags = page(files["two"])
    assert tags.block("pre", **{"class": "config"}) == [CONFIG, CONFIG]
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; risky value" in text
    # Nothing from a file reaches the page unescaped, not even inside the JSON blocks.
    assert "<b>" not in text and "<run>" not in text
    assert "<h2>rough &lt;run&gt;</h2>" in text
    assert "<title>Loss landscapes: bowl run vs rough &lt;run&gt;</title>" in text
    assert f"<tr><th>checkpoint_sha256</th><td>{'5e' * 32}</td></tr>" in text
    assert "<tr><th>torch_version</th><td>2.4.0</td></tr>" in text
    assert "<tr><th>numpy_version</th><td>not recorded in the file</td></tr>" in text
    env = text[text.index('id="environment"') :]
    assert f"<tr><th>numpy</th><td>{np.__version__}</td></tr>" in env
    assert "<tr><th>python</th>" in env and "<tr><th>torch</th>" in env


def test_viewer_data_and_static_fallback(files: dict[str, Path]) -> None:
    _, tags = page(files["two"])
    viewers = [a for t, a, _ in tags.tags if t == "div" and a.get("class") == "viewer"]
    assert [v["data-surface"] for v in viewers] == ["surface-0", "surface-1"]
    data = json.loads(tags.block("script", id="surface-1")[0])
    assert data["x"] == X.tolist() and data["y"] == Y.tolist()
    z = rough()
    assert len(data["z"]) == len(Y) and {len(r) for r in data["z"]} == {len(X)}  # [iy][ix]
    assert data["z"][2][3] is None and data["z"][0][20] is None
    assert data["z"][5][7] == z[5, 7]
    assert data["metric"] == "train loss" and data["is_loss"] is True
    assert "direction 1" in data["xlabel"] and "direction 2" in data["ylabel"]
    # Without JavaScript: images are plain tags outside any script or noscript, and the
    # viewer's place says why it is empty.
    for tag, _, parents in tags.tags:
        if tag == "img":
            assert "script" not in parents and "noscript" not in parents
    assert sum(1 for t, _, parents in tags.tags if t == "p" and "noscript" in parents) == 2


def test_line_and_mixed_reports(files: dict[str, Path], tmp_path: Path) -> None:
    out = report.write_report([files["line"]], tmp_path / "line.html")
    text, tags = page(out)
    assert len(images(tags)) == 1  # the static line plot only
    assert 'class="viewer"' not in text and 'id="surface-' not in text
    (embedded,) = tags.block("script", id="landscape-stats")
    assert json.loads(embedded)["line"]["stats"]["barrier"]["mean"] == pytest.approx(0.25)

    out = report.write_report([files["bowl"], files["line"]], tmp_path / "mixed.html")
    text, tags = page(out)
    assert "mix 1D and 2D surfaces" in text
    assert len(images(tags)) == 3  # contour and 3D of the bowl, the line
    assert text.count('class="viewer"') == 1


def test_fine_grids_are_thinned_for_the_viewer(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "VIEWER_MAX_POINTS", 8)
    text, tags = page(report.write_report([files["bowl"]], tmp_path / "thin.html"))
    data = json.loads(tags.block("script", id="surface-0")[0])
    assert data["x"] == X[::3].tolist() and data["y"] == Y[::3].tolist()  # ceil(21 / 8) = 3
    assert data["z"][1][2] == pytest.approx(bowl()[3, 6])
    assert "one grid point in 3 along each axis is shown" in text


def test_hessian_map_is_drawn(files: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "hess.h5"
    shutil.copy(files["bowl"], path)
    ratio = np.zeros((len(Y), len(X)))
    ratio[:, :7] = -0.5  # a signed map: |ratio| is drawn and counted
    write_extra(path, "hessian_ratio", ratio)
    text, tags = page(report.write_report([path], tmp_path / "hess.html"))
    assert len(images(tags)) == 3
    assert "Hessian |λmin/λmax|" in text
    (embedded,) = tags.block("script", id="landscape-stats")
    frac = json.loads(embedded)["bowl"]["stats"]["hessian_nonconvex_fraction"]["mean"]
    assert frac == pytest.approx(7 / 21)


def test_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="is a folder"):
        report.write_report([files["bowl"]], tmp_path)
    with pytest.raises(LandscapeError, match="no such file"):
        report.write_report([tmp_path / "missing.h5"], tmp_path / "r.html")
    with pytest.raises(LandscapeError, match="unknown metric"):
        report.write_report([files["bowl"]], tmp_path / "r.html", metric="train_acc")
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- in a browser

BROWSER = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)

# Appended to a copy of the page: point at one grid point, drag, zoom and reset, then write
# what the viewer did into the DOM for the test to read.
HARNESS = """<script>
window.addEventListener("load", function () {
  var out = {};
  try {
    var v = window.landscapeViewers[1], c = v.canvas, r = c.getBoundingClientRect();
    var nx = v.d.x.length, p = v.pts[4 * nx + 6];
    function at(type, x, y, extra) {
      var init = Object.assign({clientX: x, clientY: y, pointerId: 1, bubbles: true}, extra || {});
      c.dispatchEvent(type === "wheel" ? new WheelEvent(type, init) : new PointerEvent(type, init));
    }
    at("pointermove", r.left + p.sx * r.width / v.w, r.top + p.sy * r.height / v.h);
    out.readout = v.out.textContent;
    var yaw = v.yaw;
    at("pointerdown", r.left + 50, r.top + 50);
    at("pointermove", r.left + 110, r.top + 70);
    at("pointerup", r.left + 110, r.top + 70);
    out.turned = v.yaw - yaw;
    at("wheel", r.left + 50, r.top + 50, {deltaY: -300});
    out.zoom = v.zoom;
    c.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
    out.reset = [v.yaw === yaw, v.zoom];
    v.draw();
  } catch (e) {
    out.error = String(e);
  }
  document.body.setAttribute("data-harness", JSON.stringify(out));
});
</script>"""


def run_browser(path: Path, tmp_path: Path) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's log."""
    assert BROWSER is not None
    cmd = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=3000", "--dump-dom", path.resolve().as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, res.stderr


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed")
def test_in_a_browser(files: dict[str, Path], tmp_path: Path) -> None:
    dom, log = run_browser(files["two"], tmp_path)
    assert "Loss landscapes: bowl run vs rough" in dom
    assert re.search(r'<body[^>]*data-viewer-ready="2"', dom), "the viewer script did not finish"
    assert len(re.findall(r'<div class="viewer"[^>]*data-viewer-ready="1"', dom)) == 2
    assert dom.count("<canvas") == 2
    assert "Uncaught" not in log, log[-2000:]

    harness = tmp_path / "harness.html"
    harness.write_text(files["two"].read_text().replace("</body>", HARNESS + "</body>"))
    dom, log = run_browser(harness, tmp_path)
    assert "Uncaught" not in log, log[-2000:]
    found = re.search(r'data-harness="([^"]*)"', dom)
    assert found, "the harness did not run"
    out = json.loads(html.unescape(found.group(1)))
    assert "error" not in out, out
    # The readout names grid point (iy=4, ix=6) of the rough surface and its value.
    nums = [float(s) for s in re.findall(r"= (-?[\d.e+-]+)", out["readout"])]
    assert out["readout"].startswith("x = ") and "train loss = " in out["readout"]
    assert nums == pytest.approx([X[6], Y[4], rough()[4, 6]], rel=1e-3, abs=1e-9)
    assert out["turned"] == pytest.approx(0.6)  # 60 px of drag at 0.01 rad per px
    assert out["zoom"] > 1.4
    assert out["reset"] == [True, 1]
