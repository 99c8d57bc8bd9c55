"""`distance_map` of any scene from a real coastline: GSHHG through `roaring-landmask`.

Why: AI4Arctic raw files carry a `distance_map` (class 0 = land, then 41
distance bins, `ai4arctic.DISTANCE_CLASS_EDGES_KM`), and `--land_mask=distance_map`
leaves land out of every polygon mean and pixel loss. A Sentinel-1 product has
no such layer, so it is made here from the GSHHG shoreline that the maintained
`roaring-landmask` package ships (a Rust point-in-polygon index; no download at
run time), with the scene's geolocation (its GCP grid) saying where each pixel lies.

How, and why that way (a 10,000 x 10,000 scene in a few seconds and tens of MB
beyond the output array):
1. The GCPs are projected to a local azimuthal equidistant plane centred on the
   scene (true distances from the centre, < 1 % off 500 km away).
2. Land/water is tested on two square grids of that plane, never per 40 m pixel:
   a fine grid over the scene plus `FINE_MARGIN_KM` (cells of `MIN_FINE_M` or
   more, at most `FINE_CELLS` a side: ~290 m for a full EW scene), and a 2 km
   grid over the scene plus `COARSE_MARGIN_KM` (300 km, the last class edge),
   so that land outside the scene counts, as it does in the AI4Arctic files.
3. Euclidean distance transforms give a signed distance (metres to the
   nearest land cell for water, minus to the nearest water cell for land, each
   less half a cell, so the coast lies half-way between a land and a water
   cell). Where the fine grid finds no land within its margin the coarse one
   decides (its bins are 5 km or wider there; 2 km cells are good enough).
4. The signed distance is sampled bilinearly at anchor pixels about one fine
   cell apart and interpolated bilinearly to every pixel in row blocks, then
   binned with `ai4arctic.distance_classes` (<= 0 km is land, class 0).

The coastline is therefore as sharp as the fine grid (~100-300 m), not 40 m;
GSHHG itself is a ~100 m product. Lakes count as water (GSHHG level 2 is not
subtracted by roaring-landmask's default); they are rare in sea-ice scenes.

The GSHHG index takes ~6 s and ~1.2 GB to load: it is loaded once per process
(a Beam worker converting many products pays it once).
"""

import threading

import numpy as np
from scipy import ndimage

from tfseaice.data.ai4arctic import distance_classes
from tfseaice.data.scene_grids import gcp_grid, pixel_centres
from tfseaice.errors import InputError

FINE_MARGIN_KM = 20.0      # the 1 km bins end at 20 km: any land nearer than that lies inside the fine grid
COARSE_MARGIN_KM = 300.0   # the last class edge: farther is class 41 whatever lies beyond
COARSE_M = 2000.0
MIN_FINE_M = 100.0
FINE_CELLS = 1536          # fine grid side at most (2.4 M land tests, ~3-6 s near coasts)
ROW_BLOCK = 512            # output rows per interpolation block

_LOCK = threading.Lock()
_LANDMASK = []


def landmask():
    """The process's GSHHG land index (roaring_landmask.RoaringLandmask), loaded on first use."""
    with _LOCK:
        if not _LANDMASK:
            from roaring_landmask import RoaringLandmask

            _LANDMASK.append(RoaringLandmask.new())
        return _LANDMASK[0]


def is_land(lon, lat):
    """bool array (shape of `lon`): True where the point lies on GSHHG land."""
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    x = np.ascontiguousarray(((lon.ravel() + 180.0) % 360.0) - 180.0)
    y = np.ascontiguousarray(np.clip(lat.ravel(), -90.0, 90.0))
    return np.asarray(landmask().contains_many(x, y), bool).reshape(lon.shape)


def _local_projection(lat0, lon0):
    import pyproj

    crs = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m")
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def _bilinear(ul, us, grid, lines, samples):
    """`grid` [len(ul), len(us)] bilinear (edge-clamped) at every (line, sample) pair: [len(lines), len(samples)]."""
    along = np.stack([np.interp(samples, us, row) for row in grid])               # [L, S_out]
    return np.stack([np.interp(lines, ul, along[:, j]) for j in range(along.shape[1])], axis=1)


class _Raster:
    """A land/water raster on a square grid of the local plane, as a signed or unsigned distance in metres."""

    def __init__(self, transformer, x, y, margin_m, cell_m, max_cells=None):
        x0, x1 = float(np.min(x)) - margin_m, float(np.max(x)) + margin_m
        y0, y1 = float(np.min(y)) - margin_m, float(np.max(y)) + margin_m
        if max_cells:
            cell_m = max(cell_m, max(x1 - x0, y1 - y0) / max_cells)
        self.cell, self.x0, self.y0 = cell_m, x0, y0
        nx, ny = int(np.ceil((x1 - x0) / cell_m)) + 1, int(np.ceil((y1 - y0) / cell_m)) + 1
        gx = x0 + cell_m * np.arange(nx)
        self.land = np.empty((ny, nx), bool)
        for r0 in range(0, ny, 256):   # inverse projection in row blocks: float64 temporaries stay small
            gy = y0 + cell_m * np.arange(r0, min(ny, r0 + 256))
            lon, lat = transformer.transform(*np.meshgrid(gx, gy), direction="INVERSE")
            self.land[r0:r0 + len(gy)] = is_land(lon, lat)

    def distance(self, signed):
        """Metres to the nearest land cell less half a cell (water); land: minus the same to water, or 0."""
        half = self.cell / 2
        if not self.land.any():
            return np.full(self.land.shape, np.inf, np.float32)
        to_land = ndimage.distance_transform_edt(~self.land, sampling=self.cell) - half
        if not signed:
            return np.where(self.land, 0.0, to_land).astype(np.float32)
        if self.land.all():
            return np.full(self.land.shape, -np.inf, np.float32)
        to_water = ndimage.distance_transform_edt(self.land, sampling=self.cell) - half
        return np.where(self.land, -to_water, to_land).astype(np.float32)

    def sample(self, values, x, y):
        """`values` (this raster's shape) bilinear at plane points (x, y)."""
        coords = np.stack([(np.ravel(y) - self.y0) / self.cell, (np.ravel(x) - self.x0) / self.cell])
        finite = np.where(np.isfinite(values), values, np.sign(values) * 1e9).astype(np.float32)
        return ndimage.map_coordinates(finite, coords, order=1, mode="nearest").reshape(np.shape(x))


def _anchors(n, step):
    """Output pixel indices about `step` apart, first and last included."""
    idx = np.arange(0, n, max(1, step))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def signed_distance_km(gcps, shape, f=1):
    """Signed distance to the GSHHG coast in km at anchor pixels: (anchor rows, anchor cols, km [A_r, A_c]).

    `gcps`: (unique lines, unique samples, lat [L, S], lon [L, S]) on the 40 m
    grid; `shape`: the output grid (40 m x f pixels). Land is negative.
    """
    ul, us, lat, lon = gcps
    mid = (lat.shape[0] // 2, lat.shape[1] // 2)
    transformer = _local_projection(float(lat[mid]), float(lon[mid]))
    gx, gy = transformer.transform(lon, lat)
    gx, gy = np.asarray(gx, np.float64), np.asarray(gy, np.float64)
    spacing_m = 40.0 * f
    # Anchor positions: corners of the scene first, to size the rasters.
    corners_l = pixel_centres(shape[0], f)[[0, -1]]
    corners_s = pixel_centres(shape[1], f)[[0, -1]]
    cx, cy = _bilinear(ul, us, gx, corners_l, corners_s), _bilinear(ul, us, gy, corners_l, corners_s)
    fine = _Raster(transformer, cx, cy, FINE_MARGIN_KM * 1e3, max(MIN_FINE_M, spacing_m), FINE_CELLS)
    step = int(max(1, fine.cell // spacing_m))
    rows, cols = _anchors(shape[0], step), _anchors(shape[1], step)
    lines, samples = pixel_centres(shape[0], f)[rows], pixel_centres(shape[1], f)[cols]
    ax, ay = _bilinear(ul, us, gx, lines, samples), _bilinear(ul, us, gy, lines, samples)
    d = fine.sample(fine.distance(signed=True), ax, ay)
    far = d >= FINE_MARGIN_KM * 1e3 - fine.cell
    if far.any():
        coarse = _Raster(transformer, cx, cy, COARSE_MARGIN_KM * 1e3, COARSE_M)
        d_far = coarse.sample(coarse.distance(signed=False), ax[far], ay[far])
        d[far] = np.maximum(d_far, FINE_MARGIN_KM * 1e3)
    return rows, cols, d / 1e3


def _interp_rows(anchor_rows, along, out_rows):
    """Rows `out_rows` of the anchor rows' values `along` [A_r, W], linear between anchors."""
    i = np.clip(np.searchsorted(anchor_rows, out_rows, side="right") - 1, 0, max(len(anchor_rows) - 2, 0))
    if len(anchor_rows) == 1:
        return np.repeat(along[:1], len(out_rows), axis=0)
    w = ((out_rows - anchor_rows[i]) / (anchor_rows[i + 1] - anchor_rows[i])).astype(np.float32)[:, None]
    return along[i] * (1 - w) + along[i + 1] * w


def distance_map_from_gcps(gcps, shape, f=1):
    """float32 [H, W] AI4Arctic `distance_map` classes (0 = land) for `gcps` (see signed_distance_km)."""
    shape = tuple(int(s) for s in shape)
    rows, cols, km = signed_distance_km(gcps, shape, f)
    out_cols = np.arange(shape[1])
    along = np.stack([np.interp(out_cols, cols, r) for r in km]).astype(np.float32)   # [A_r, W]
    out = np.empty(shape, np.float32)
    for r0 in range(0, shape[0], ROW_BLOCK):
        block_rows = np.arange(r0, min(shape[0], r0 + ROW_BLOCK))
        out[r0:r0 + len(block_rows)] = distance_classes(_interp_rows(rows, along, block_rows))
    return out


def scene_gcps(ds, path):
    """(unique lines, unique samples, lat, lon) of a raw-layout Dataset's GCP grid; InputError if unusable."""
    ul, us, lat = gcp_grid(ds, "sar_grid_latitude", path)
    _, _, lon = gcp_grid(ds, "sar_grid_longitude", path)
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise InputError(path, "the GCP grid has gaps: no land mask can be placed")
    if len(ul) < 2 or len(us) < 2:
        raise InputError(path, f"needs a GCP grid of at least 2 x 2 points, got {len(ul)} x {len(us)}")
    return ul, us, lat, lon


def distance_map(ds, path, shape=None, f=1):
    """`distance_map` classes (float32 [H, W], 0 = land) of a raw-layout Dataset, from its GCPs.

    `shape` defaults to the Dataset's `sar_lines` x `sar_samples` (40 m, f = 1).
    """
    if shape is None:
        shape = (ds.sizes["sar_lines"] // f, ds.sizes["sar_samples"] // f)
    return distance_map_from_gcps(scene_gcps(ds, path), shape, f)


def distance_map_variable(ds, path):
    """`distance_map` as a (dims, values, attrs) tuple for the raw layout, with where it comes from."""
    return (("sar_lines", "sar_samples"), distance_map(ds, path), {
        "long_name": "distance to land as a class index", "units": "1",
        "comment": "0 land; 1: 0-0.5 km, 2: 0.5-1 km, then 1 km steps to 20 km, 5 km to 50 km, "
                   "10 km to 100 km, 25 km to 300 km, 41: over 300 km (the AI4Arctic classes)",
        "source": "GSHHG shoreline through roaring-landmask (tfseaice.data.land)"})
