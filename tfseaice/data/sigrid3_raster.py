"""A SIGRID-3 chart on a SAR product's grid: `polygon_icechart` and `polygon_codes` as AI4Arctic has them.

Why through the geolocation grid: a Sentinel-1 GRD product is in radar
geometry (lines, samples), geolocated only by its tie points (AI4Arctic
`sar_grid_*`: line, sample, latitude, longitude on a regular line x sample
grid). The chart's polygons are brought to image coordinates, then burnt
with `rasterio.features.rasterize`, so every pixel takes the polygon its
centre lies in.

How (docs/sigrid3.md):
1. A local projection: the oblique stereographic centred on the scene (the
   mean of the tie points as unit vectors). It is conformal and has no
   seam near the scene, so scenes at the pole or across the antimeridian
   need no special case (lon/lat interpolation would break there).
2. Forward model: (line, sample) -> local (x, y) bilinear in the tie-point
   grid, linear beyond its edge. The inverse, local -> (line, sample), is
   that model solved by Newton's method (a few iterations, vectorised),
   started from an affine fit: exact at the tie points by construction.
3. Chart polygons: edges densified in the chart's CRS (a straight edge there
   is a curve in the image) to 1/16 of the tie-point spacing, transformed to
   the local projection, clipped to the scene (a margin of 8 pixels), mapped
   to the image (pixel (i, j) covers [j, j+1) x [i, i+1), its centre is the
   tie points' (line i, sample j)), rasterised in file order (a later feature
   wins where polygons overlap).
"""

import numpy as np
import pyproj
import rasterio.features
import shapely
from affine import Affine

from tfseaice.data.scene_grids import gcp_grid
from tfseaice.data.sigrid3 import polygonal
from tfseaice.errors import InputError

DENSIFY_PER_GCP_CELL = 16   # densified edge length: tie-point spacing / 16
MARGIN_PIXELS = 8           # polygons are clipped to the scene plus this margin
NEWTON_STEPS = 30
_WGS84 = "EPSG:4326"


def _regular(lines, samples, values, source):
    """(unique lines, unique samples, values [L, S]) of scattered tie points on a regular grid."""
    ul, us = np.unique(lines), np.unique(samples)
    if len(ul) < 2 or len(us) < 2 or len(ul) * len(us) != len(values):
        raise InputError(source, f"tie points do not form a regular grid ({len(ul)} lines x {len(us)} samples, "
                                 f"{len(values)} points)")
    grid = np.full((len(ul), len(us)), np.nan)
    grid[np.searchsorted(ul, lines), np.searchsorted(us, samples)] = values
    return ul, us, grid


class ProductGrid:
    """A product's tie-point grid in its local stereographic projection: (line, sample) <-> (x, y), lon/lat."""

    def __init__(self, lines, samples, lat, lon, source="geolocation grid"):
        self.source = source
        self.lines, self.samples = np.asarray(lines, np.float64), np.asarray(samples, np.float64)
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
            raise InputError(source, "geolocation grid has gaps (NaN latitude or longitude)")
        self.lat_c, self.lon_c = _centre(lon.ravel(), lat.ravel())
        self.crs = pyproj.CRS.from_proj4(f"+proj=stere +lat_0={self.lat_c:.8f} +lon_0={self.lon_c:.8f} +k=1 "
                                         "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
        self._from_ll = pyproj.Transformer.from_crs(_WGS84, self.crs, always_xy=True)
        self._to_ll = pyproj.Transformer.from_crs(self.crs, _WGS84, always_xy=True)
        self.x, self.y = self._from_ll.transform(lon, lat)
        ll, ss = np.meshgrid(self.lines, self.samples, indexing="ij")
        a = np.column_stack([np.ones(ll.size), self.x.ravel(), self.y.ravel()])
        self._affine, *_ = np.linalg.lstsq(a, np.column_stack([ll.ravel(), ss.ravel()]), rcond=None)

    # -------------------------------------------------------------- mapping
    @staticmethod
    def _cell(axis, v):
        i = np.clip(np.searchsorted(axis, v, side="right") - 1, 0, len(axis) - 2)
        d = axis[i + 1] - axis[i]
        return i, (v - axis[i]) / d, d

    def forward(self, line, sample):
        """Local (x, y) of image positions (bilinear in the tie points; linear beyond the grid)."""
        (x, y), _ = self._forward_jac(np.asarray(line, np.float64), np.asarray(sample, np.float64))
        return x, y

    def _forward_jac(self, line, sample):
        i, t, dl = self._cell(self.lines, line)
        j, u, ds = self._cell(self.samples, sample)
        out, jac = [], []
        for g in (self.x, self.y):
            g00, g01, g10, g11 = g[i, j], g[i, j + 1], g[i + 1, j], g[i + 1, j + 1]
            out.append((1 - t) * ((1 - u) * g00 + u * g01) + t * ((1 - u) * g10 + u * g11))
            jac.append((((1 - u) * (g10 - g00) + u * (g11 - g01)) / dl, ((1 - t) * (g01 - g00) + t * (g11 - g10)) / ds))
        return out, jac

    def inverse(self, x, y):
        """(line, sample) of local (x, y): the forward model solved by Newton's method."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        c = self._affine
        line = c[0, 0] + c[1, 0] * x + c[2, 0] * y
        sample = c[0, 1] + c[1, 1] * x + c[2, 1] * y
        for _ in range(NEWTON_STEPS):
            (fx, fy), ((a, b), (cc, d)) = self._forward_jac(line, sample)
            rx, ry = x - fx, y - fy
            det = a * d - b * cc
            det = np.where(np.abs(det) > 1e-12, det, 1e-12)
            dline, dsample = (d * rx - b * ry) / det, (a * ry - cc * rx) / det
            line, sample = line + dline, sample + dsample
            if np.nanmax(np.abs(np.concatenate([dline.ravel(), dsample.ravel(), [0.0]]))) < 1e-7:
                break
        return line, sample

    def lonlat(self, line, sample):
        """(lon, lat) of image positions."""
        return self._to_ll.transform(*self.forward(line, sample))

    def lonlat_to_image(self, lon, lat):
        """(line, sample) of lon/lat points."""
        return self.inverse(*self._from_ll.transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64)))

    def border(self, shape, margin=0.0, per_side=64):
        """Image positions (line, sample) around the pixel edges of a [lines, samples] image, plus `margin` pixels."""
        lo, hi_l, hi_s = -0.5 - margin, shape[0] - 0.5 + margin, shape[1] - 0.5 + margin
        t = np.linspace(0.0, 1.0, per_side, endpoint=False)
        lines = np.concatenate([np.full_like(t, lo), lo + t * (hi_l - lo), np.full_like(t, hi_l), hi_l - t * (hi_l - lo)])
        samples = np.concatenate([lo + t * (hi_s - lo), np.full_like(t, hi_s), hi_s - t * (hi_s - lo), np.full_like(t, lo)])
        return lines, samples

    def footprint(self, shape, margin=0.0):
        """The image's outline (plus `margin` pixels) as a polygon in local (x, y)."""
        return shapely.Polygon(np.column_stack(self.forward(*self.border(shape, margin))))

    def footprint_lonlat(self, shape):
        """The image's outline as an [N, 2] (lon, lat) ring (for `chart_overlaps`)."""
        return np.column_stack(self.lonlat(*self.border(shape)))


def _centre(lon, lat):
    """(lat, lon) of the mean unit vector of points: a centre that works at the pole and the antimeridian."""
    la, lo = np.radians(lat), np.radians(lon)
    v = np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]).mean(axis=1)
    return float(np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))), float(np.degrees(np.arctan2(v[1], v[0])))


def product_grid(grid, source=None):
    """A ProductGrid from a raw-layout Dataset (`sar_grid_*`), a ProductGrid, or (lines, samples, lat, lon) points."""
    if isinstance(grid, ProductGrid):
        return grid
    if hasattr(grid, "variables"):
        source = source or grid.attrs.get("original_id", "product")
        ul, us, lat = gcp_grid(grid, "sar_grid_latitude", source)
        _, _, lon = gcp_grid(grid, "sar_grid_longitude", source)
        return ProductGrid(ul, us, lat, lon, source)
    source = source or "geolocation grid"
    lines, samples, lat, lon = (np.asarray(a, np.float64).ravel() for a in grid)
    ul, us, lat_g = _regular(lines, samples, lat, source)
    _, _, lon_g = _regular(lines, samples, lon, source)
    return ProductGrid(ul, us, lat_g, lon_g, source)


def _image_shape(grid, shape):
    if shape is not None:
        return int(shape[0]), int(shape[1])
    if hasattr(grid, "sizes") and "sar_lines" in grid.sizes and "sar_samples" in grid.sizes:
        return int(grid.sizes["sar_lines"]), int(grid.sizes["sar_samples"])
    raise ValueError("shape (lines, samples) is needed when the grid is not a raw-layout Dataset")


def _transform_geoms(geoms, transformer):
    def f(coords):
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.nan_to_num(np.column_stack([x, y]), nan=1e15, posinf=1e15, neginf=-1e15)
    return shapely.transform(geoms, f)


def _valid(geoms):
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def _segment_length(chart, g):
    """Densified edge length in chart units: the tie-point spacing there / DENSIFY_PER_GCP_CELL."""
    to_chart = pyproj.Transformer.from_crs(g.crs, chart.crs, always_xy=True)
    cx, cy = to_chart.transform(g.x, g.y)
    steps = np.concatenate([np.hypot(np.diff(cx, axis=a), np.diff(cy, axis=a)).ravel() for a in (0, 1)])
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if not len(steps):
        raise InputError(chart.path, "the product's tie points cannot be placed in the chart's CRS")
    return float(np.median(steps)) / DENSIFY_PER_GCP_CELL


def chart_in_image(chart, grid, shape):
    """{poly_id: polygon in image (x = sample + 0.5, y = line + 0.5) coordinates} of the polygons on the scene."""
    g = product_grid(grid)
    to_local = pyproj.Transformer.from_crs(chart.crs, g.crs, always_xy=True)
    scene = g.footprint(shape, margin=MARGIN_PIXELS)
    geoms = np.asarray(chart.geometries, dtype=object)
    rough = _valid(_transform_geoms(geoms, to_local))
    near = np.flatnonzero(shapely.intersects(rough, scene.buffer(0.05 * np.sqrt(scene.area))))
    if not len(near):
        return {}
    dense = shapely.segmentize(geoms[near], _segment_length(chart, g))
    local = shapely.intersection(_valid(_transform_geoms(dense, to_local)), scene)

    def to_image(coords):
        line, sample = g.inverse(coords[:, 0], coords[:, 1])
        return np.column_stack([sample + 0.5, line + 0.5])

    out = {}
    for k, geom in zip(near.tolist(), local):
        geom = polygonal(geom)
        if geom is not None and geom.area > 0:
            out[int(chart.ids[k])] = shapely.transform(geom, to_image)
    return out


def rasterize_chart(chart, grid, shape=None, all_touched=False):
    """(`polygon_icechart` float32 [lines, samples], `polygon_codes` list[str]) of a chart on a product grid.

    `grid`: the product's raw-layout Dataset (`sar_grid_line/sample/latitude/
    longitude`), a ProductGrid, or (lines, samples, lat, lon) tie points;
    `shape` defaults to the Dataset's (`sar_lines`, `sar_samples`). Pixels
    take their polygon's id (chart file position, `Chart.ids`), NaN outside
    the chart. `polygon_codes` has the AI4Arctic header and one row per
    polygon with at least one pixel, by id.
    """
    shape = _image_shape(grid, shape)
    polys = chart_in_image(chart, grid, shape)
    ids = np.zeros(shape, np.int32)   # 0 = outside the chart (ids start at 1)
    if polys:
        rasterio.features.rasterize(((geom, pid) for pid, geom in polys.items()), out=ids,
                                    transform=Affine.identity(), all_touched=all_touched)
    out, counts = _ids_to_float(ids, max(polys, default=0))
    return out, chart.polygon_codes(np.flatnonzero(counts[1:]) + 1)


def _ids_to_float(ids, max_id):
    """(float32 ids, NaN = none, in the same buffer as the int32 ids (0 = none); pixels per id).

    Why row blocks: a full EW scene is 10^8 pixels; a second full array (or
    numpy's int64 copy for bincount) would double or triple the peak memory.
    Each block is read before it is overwritten.
    """
    out = ids.view(np.float32)
    counts = np.zeros(max_id + 1, np.int64)
    step = max(1, (1 << 20) // max(ids.shape[1], 1))
    for r0 in range(0, ids.shape[0], step):
        block = ids[r0:r0 + step]
        counts += np.bincount(block.ravel(), minlength=max_id + 1)
        as_float = block.astype(np.float32)
        as_float[block == 0] = np.nan
        out[r0:r0 + step] = as_float
    return out, counts


def chart_overlaps(chart, footprint_lonlat, labelled_only=True):
    """Fraction (0..1) of a scene footprint covered by the chart's polygons (I/W ones when `labelled_only`).

    `footprint_lonlat`: [N, 2] (lon, lat) ring (`ProductGrid.footprint_lonlat`).
    Cheap: vertices are transformed, not densified, into the footprint's own
    stereographic projection, so edges are approximate; enough to pair a chart
    with a product.
    """
    ring = np.asarray(footprint_lonlat, np.float64)
    lat_c, lon_c = _centre(ring[:, 0], ring[:, 1])
    crs = pyproj.CRS.from_proj4(f"+proj=stere +lat_0={lat_c:.8f} +lon_0={lon_c:.8f} +ellps=WGS84 +units=m +no_defs")
    x, y = pyproj.Transformer.from_crs(_WGS84, crs, always_xy=True).transform(ring[:, 0], ring[:, 1])
    scene = shapely.make_valid(shapely.Polygon(np.column_stack([x, y])))
    if scene.area <= 0:
        return 0.0
    geoms = np.asarray(chart.geometries, dtype=object)
    if labelled_only:
        geoms = geoms[[row[-1] in ("I", "W") for row in chart.rows]]
    if not len(geoms):
        return 0.0
    local = _valid(_transform_geoms(geoms, pyproj.Transformer.from_crs(chart.crs, crs, always_xy=True)))
    hit = shapely.intersects(local, scene)
    if not hit.any():
        return 0.0
    covered = shapely.union_all(shapely.intersection(local[hit], scene)).area
    return float(min(1.0, covered / scene.area))
