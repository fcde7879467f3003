"""Export a surface file to VTK PolyData (for ParaView renders), CSV or NPZ."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import LandscapeError, unknown_name_message
from .storage import SurfaceData, read_surface

FORMATS = ("vtp", "csv", "npz")
# The metric drawn or exported when none is asked for: the loss is what the paper maps.
DEFAULT_METRICS = ("train_loss", "test_loss")


def pick_metric(surf: SurfaceData, metric: str | None) -> str:
    """`metric` if the surface has it; by default train_loss, else test_loss, else the first."""
    where = f"{surf.path}: " if surf.path else ""
    if not surf.metrics:
        raise LandscapeError(f"{where}the surface holds no metrics; compute it first")
    if metric is None:
        for name in DEFAULT_METRICS:
            if name in surf.metrics:
                return name
        return next(iter(surf.metrics))
    if metric not in surf.metrics:
        raise LandscapeError(where + unknown_name_message("metric", metric, surf.metrics))
    return metric


def check_not_an_input(out: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse to write over a surface file being read: its results would be lost."""
    for p in inputs:
        if out.exists() and out.resolve() == Path(p).resolve():
            raise LandscapeError(
                f"{out} is an input file: writing there would destroy it; give another output path"
            )


def export_surface(
    path: str | Path,
    fmt: str,
    out: str | Path | None = None,
    metric: str | None = None,
    log: bool = False,
    zmax: float | None = None,
    interpolate: int = 1,
    *,
    repeat: int = 0,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write the surface in `path` as vtp, csv or npz; returns the written file.

    `log`, `zmax` and `interpolate` shape the VTK height field only; CSV and NPZ hold the raw
    values. `metric` picks one metric (vtp: default train_loss; csv/npz: default all).
    `repeat` picks the direction draw for vtp when the file holds several. `note` takes one
    line of news for the user (the CLI prints it): e.g. that a VTK mesh filled holes.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise LandscapeError(f"unknown export format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if fmt != "vtp" and (log or zmax is not None or interpolate != 1):
        raise LandscapeError(
            f"log, zmax and interpolate shape the vtp height field only, not {fmt}; "
            "drop them or export as vtp"
        )
    surf = read_surface(path)
    out_path = Path(out) if out is not None else Path(path).with_suffix(f".{fmt}")
    check_not_an_input(out_path, [path])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "vtp":
        name = pick_metric(surf, metric)
        filled = _write_vtp(surf.repeat(repeat), out_path, name, log, zmax, interpolate)
        if filled and note is not None:
            note(
                f"{out_path}: {filled} point(s) of {name} were not computed or diverged; the mesh "
                f"fills their heights (with zmax, else the finite maximum), while the {name!r} "
                "array keeps NaN/inf there and 'valid' is 0"
            )
    else:
        names = [pick_metric(surf, metric)] if metric is not None else list(surf.metrics)
        if fmt == "csv":
            _write_csv(surf, out_path, names)
        else:
            _write_npz(surf, out_path, names)
    return out_path


def height_field(
    surf: SurfaceData, metric: str, log: bool = False, zmax: float | None = None
) -> np.ndarray:
    """The [iy, ix] heights of a VTK render: clipped at `zmax`, then ln(value + 0.1) if `log`.

    Non-finite values (diverged or not computed) become `zmax`, or the finite maximum when no
    `zmax` is given, so the mesh has no holes and no spikes.
    """
    z = np.asarray(surf.metrics[metric], dtype=np.float64)
    finite = np.isfinite(z)
    if not finite.any():
        raise LandscapeError(f"{surf.path}: metric {metric!r} has no finite values to export")
    top = float(zmax) if zmax is not None else float(z[finite].max())
    z = np.where(finite, np.minimum(z, top), top)
    if log:
        # The paper's renders used log(z + 0.1): the offset keeps a zero loss finite.
        if z.min() <= -0.1:
            raise LandscapeError(
                f"log needs values above -0.1, but {metric!r} reaches {z.min():.3g}; drop log"
            )
        z = np.log(z + 0.1)
    return z


def _upsample(x: np.ndarray, y: np.ndarray, z: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Bilinear refinement: each grid cell split into k x k; exact at the original points."""
    if k == 1:
        return x, y, z

    # In index space, so descending (or uneven) coordinates refine the same way; within a cell
    # the coordinates are linear in the index, so this is bilinear in them too.
    tx = np.linspace(0.0, len(x) - 1.0, (len(x) - 1) * k + 1)
    ty = np.linspace(0.0, len(y) - 1.0, (len(y) - 1) * k + 1)
    ix, iy = np.arange(len(x)), np.arange(len(y))
    xf, yf = np.interp(tx, ix, x), np.interp(ty, iy, y)
    # Bilinear on a rectilinear grid is separable: interpolate along x per row, then along y.
    rows = np.stack([np.interp(tx, ix, row) for row in z])  # (ny, nxf)
    zf = np.stack([np.interp(ty, iy, col) for col in rows.T], axis=1)  # (nyf, nxf)
    return xf, yf, zf


def _write_vtp(
    surf: SurfaceData, out: Path, metric: str, log: bool, zmax: float | None, interpolate: int
) -> int:
    """Write the VTK mesh; returns how many grid points had no measured height to show.

    Point arrays: `height` (the mesh's z: filled, clipped, log as asked), `<metric>` (the
    values as stored, NaN and inf kept) and `valid` (1 where the point was computed and finite,
    so its height is its value; 0 where the height is filled).
    """
    if surf.y is None:
        raise LandscapeError(f"{surf.path}: vtp needs a 2D surface; export a 1D one as csv or npz")
    if interpolate < 1:
        raise LandscapeError(f"interpolate must be a whole number >= 1, got {interpolate}")
    if min(surf.shape) < 2:
        raise LandscapeError(f"{surf.path}: vtp needs at least 2 points along each axis")
    x0, y0 = np.asarray(surf.x, float), np.asarray(surf.y, float)
    raw = np.asarray(surf.metrics[metric], dtype=np.float64)
    valid = np.asarray(surf.done, dtype=bool) & np.isfinite(raw)
    x, y, z = _upsample(x0, y0, height_field(surf, metric, log, zmax), interpolate)
    # A refined point is valid, and has a value, only where all its corners do.
    _, _, valid_f = _upsample(x0, y0, valid.astype(np.float64), interpolate)
    _, _, raw_f = _upsample(x0, y0, np.where(valid, raw, 0.0), interpolate)
    valid_f = valid_f > 1 - 1e-9
    raw_f = np.where(valid_f, raw_f, np.nan)
    raw_f[::interpolate, ::interpolate] = raw  # the grid's own points keep their stored values
    ny, nx = z.shape
    xx, yy = np.meshgrid(x, y)  # (ny, nx); point id = iy * nx + ix
    points = np.column_stack([xx.ravel(), yy.ravel(), z.ravel()])
    # One quad per cell, corners counter-clockwise seen from +z so normals point up; on an axis
    # that descends (x or y from max to min) the grid's own order turns, so the corners do too.
    iy, ix = np.meshgrid(np.arange(ny - 1), np.arange(nx - 1), indexing="ij")
    p0 = (iy * nx + ix).ravel()
    quads = np.column_stack([p0, p0 + 1, p0 + 1 + nx, p0 + nx])
    if (x[-1] - x[0]) * (y[-1] - y[0]) < 0:
        quads = quads[:, ::-1]
    offsets = 4 * np.arange(1, len(quads) + 1)

    def block(a: np.ndarray, fmt: str, per_line: int) -> str:
        a = a.reshape(-1, per_line)
        return "\n".join(" ".join(fmt % v for v in row) for row in a)

    def point_array(name: str, values: np.ndarray, kind: str = "Float64") -> str:
        fmt = "%d" if kind.startswith("U") else "%.17g"  # %.17g: float64 exactly, nan, inf
        return (
            f'        <DataArray type="{kind}" Name="{name}" NumberOfComponents="1" '
            f'format="ascii">\n{block(values.ravel(), fmt, nx)}\n        </DataArray>\n'
        )

    height = "height" + ("_log" if log else "")
    text = f"""<?xml version="1.0"?>
<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian">
  <PolyData>
    <Piece NumberOfPoints="{nx * ny}" NumberOfVerts="0" NumberOfLines="0" NumberOfStrips="0" \
NumberOfPolys="{len(quads)}">
      <PointData Scalars="{height}">
{point_array(height, z)}{point_array(metric, raw_f)}{point_array("valid", valid_f, "UInt8")}\
      </PointData>
      <Points>
        <DataArray type="Float64" Name="Points" NumberOfComponents="3" format="ascii">
{block(points, "%.17g", 3)}
        </DataArray>
      </Points>
      <Polys>
        <DataArray type="Int64" Name="connectivity" format="ascii">
{block(quads, "%d", 4)}
        </DataArray>
        <DataArray type="Int64" Name="offsets" format="ascii">
{block(offsets, "%d", 1)}
        </DataArray>
      </Polys>
    </Piece>
  </PolyData>
</VTKFile>
"""
    _write_text(out, text)
    return int(valid.size - valid.sum())


def _write_csv(surf: SurfaceData, out: Path, names: list[str]) -> None:
    cols = (["repeat"] if surf.repeats > 1 else []) + ["x"] + (["y"] if surf.ndim == 2 else [])
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + names)
        for k in range(surf.repeats):
            one = surf.repeat(k)
            # Flattening [iy, ix] row-major puts y in the outer loop, matching meshgrid(x, y).
            if one.y is None:
                coords = [np.asarray(one.x)]
            else:
                xx, yy = np.meshgrid(one.x, one.y)
                coords = [xx.ravel(), yy.ravel()]
            values = [np.asarray(one.metrics[n], dtype=np.float64).ravel() for n in names]
            lead = [k] if surf.repeats > 1 else []
            for i in range(len(coords[0])):
                w.writerow(lead + [repr(float(c[i])) for c in coords + values])
    os.replace(tmp, out)


def _write_npz(surf: SurfaceData, out: Path, names: list[str]) -> None:
    arrays: dict[str, np.ndarray] = {"x": np.asarray(surf.x)}
    if surf.y is not None:
        arrays["y"] = np.asarray(surf.y)
    arrays.update({n: np.asarray(surf.metrics[n]) for n in names})
    arrays["done"] = np.asarray(surf.done, dtype=bool)
    # A file handle stops numpy from appending ".npz" to a path with another suffix.
    with open(out, "wb") as fh:
        # numpy's stub lets **kwds fill the keyword-only allow_pickle: bool, so mypy objects.
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def _write_text(out: Path, text: str) -> None:
    # Written under a temporary name so an interrupted export never leaves a half file.
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
