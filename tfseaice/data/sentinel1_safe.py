"""A Sentinel-1 GRD product on disk (`NAME.SAFE/` folder or `NAME.zip` of it): its files and metadata.

Why this module: everything the chain needs before the pixels, each failure
turned into one `InputError(product path, what is wrong)`. The maintained
reader xarray-sentinel does the SAFE work: the manifest (platform, mode,
product type, polarisations, times, the file of each role), the geolocation
grid (`<pol group>/gcp`) and the calibration tables (`<pol group>/calibration`),
decoded with the ESA XSDs it bundles; folders and zips both go through fsspec
(a `zip` filesystem for a `.zip`). Written here, and why:
- the platform check (xarray-sentinel fails on a Sentinel-2 manifest with an
  XPath message, not "this is Sentinel-2") and the IPF version (not parsed by
  it; it decides how noise is removed, docs/sentinel1.md);
- the footprint from the manifest, for pairing with charts without opening
  any annotation (`product_info`);
- the measurement path as GDAL sees it (`/vsizip/` for a zip), because the
  pixels are read with rasterio in line blocks (sentinel1.py), not through
  xarray-sentinel's lazy dask array (its zip path is not one GDAL can open).
"""

import io
import os
import re
import zipfile
from xml.etree import ElementTree

import fsspec
import numpy as np
import xarray_sentinel
from xarray_sentinel import esa_safe

from tfseaice.errors import InputError

MISSIONS = ("S1A", "S1B", "S1C", "S1D")
GRD_SPACINGS_M = (10.0, 40.0)      # IW GRDH, EW GRDM (what 40 m output can be made from by block means)
_FILE_ROLES = ("calibration", "noise_range")


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SafeProduct:
    """One product: its file system (local or zip), its SAFE root and its manifest attributes."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise InputError(self.path, "does not exist")
        if os.path.isdir(self.path):
            self.fs, self.root, self.zip_path = fsspec.filesystem("file"), os.path.abspath(self.path), None
            if not os.path.exists(os.path.join(self.root, "manifest.safe")):
                raise InputError(self.path, "has no manifest.safe (not a SAFE folder)")
        elif zipfile.is_zipfile(self.path):
            self.zip_path = os.path.abspath(self.path)
            try:
                with zipfile.ZipFile(self.zip_path) as zf:
                    names = zf.namelist()
                    bad = zf.testzip() if os.path.getsize(self.zip_path) < (64 << 20) else None
                self.fs = fsspec.filesystem("zip", fo=self.zip_path, skip_instance_cache=True)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(self.path, f"is a damaged .zip ({_first_line(exc)})") from None
            if bad:
                raise InputError(self.path, f"is a damaged .zip ({bad} fails its CRC check)")
            manifests = [n for n in names if re.fullmatch(r"[^/]+\.SAFE/manifest\.safe", n)]
            if not manifests:
                raise InputError(self.path, "holds no NAME.SAFE/manifest.safe (not a zipped Sentinel-1 product)")
            self.root = manifests[0][:-len("/manifest.safe")]
        elif self.path.lower().endswith(".zip"):
            raise InputError(self.path, "is not a complete .zip (truncated or damaged: no zip directory)")
        else:
            raise InputError(self.path, "is neither a .SAFE folder nor the .zip of one")
        self.name = os.path.basename(self.root)[:-5] if self.root.endswith(".SAFE") else os.path.basename(self.root)
        self._manifest = self._read_manifest()
        self.attrs = self._product_attrs()

    # ---------------------------------------------------------------- files
    def join(self, rel):
        return f"{self.root}/{rel.removeprefix('./')}" if self.zip_path else os.path.join(self.root, os.path.normpath(rel))

    def read_bytes(self, rel_or_abs, what):
        path = rel_or_abs if rel_or_abs.startswith(self.root) else self.join(rel_or_abs)
        try:
            with self.fs.open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(self.path, f"cannot read {what} {os.path.basename(path)} ({_first_line(exc)})") from None

    def gdal_path(self, abs_path):
        """A measurement file as GDAL opens it (`/vsizip/` inside a zip)."""
        return f"/vsizip/{self.zip_path}/{abs_path}" if self.zip_path else abs_path

    # ------------------------------------------------------------- manifest
    def _read_manifest(self):
        data = self.read_bytes("manifest.safe", "the manifest")
        try:
            root = ElementTree.fromstring(data)
        except ElementTree.ParseError as exc:
            raise InputError(self.path, f"manifest.safe cannot be parsed ({_first_line(exc)})") from None
        family = root.findtext(".//{*}platform/{*}familyName")
        if family != "SENTINEL-1":
            raise InputError(self.path, f"is not a Sentinel-1 product (manifest platform {family or 'missing'})")
        number = root.findtext(".//{*}platform/{*}number") or ""
        if f"S1{number}" not in MISSIONS:
            raise InputError(self.path, f"is from Sentinel-1{number or '?'}, not one of {', '.join(MISSIONS)}")
        self._manifest_root = root
        return data

    def _product_attrs(self):
        try:
            attrs, files = esa_safe.parse_manifest_sentinel1(io.BytesIO(self._manifest))
        except (ValueError, KeyError, TypeError, ElementTree.ParseError) as exc:
            raise InputError(self.path, f"manifest.safe is not a readable Sentinel-1 manifest ({_first_line(exc)})") from None
        attrs = dict(attrs)
        attrs["mission"] = f"S1{attrs['number']}"
        attrs["polarisations"] = tuple(attrs["transmitter_receiver_polarisations"])
        software = self._manifest_root.find(".//{*}software[@name='Sentinel-1 IPF']")
        attrs["ipf_version"] = _ipf_text(software.get("version") if software is not None else None)
        coords = self._manifest_root.findtext(".//{*}footPrint/{*}coordinates") or ""
        pairs = [tuple(float(v) for v in p.split(",")) for p in coords.split()]
        attrs["footprint_lat"] = [p[0] for p in pairs]
        attrs["footprint_lon"] = [p[1] for p in pairs]
        self._files = files
        return attrs

    def ipf(self):
        """IPF version as (major, minor in hundredths), e.g. (2, 84), (3, 71); (0, 0) when the manifest does not say."""
        try:
            major, minor = self.attrs["ipf_version"].split(".")[:2]
            return int(major), int(minor.ljust(2, "0"))     # "2.9" is 2.90, after 2.84
        except (ValueError, AttributeError):
            return (0, 0)

    def require_grd(self):
        kind = self.attrs["product_type"]
        if kind != "GRD":
            article = "an" if kind[:1] in "AEFHILMNORSX" else "a"
            raise InputError(self.path, f"is {article} {kind} product; only GRD (EW GRDM, IW GRDH) is read")

    def groups(self):
        """xarray-sentinel's group -> [files] for the files that exist."""
        return xarray_sentinel.sentinel1.find_available_groups(
            self._files, self.root, self.attrs["product_type"], check_files_exist=True, fs=self.fs)

    def pol_files(self, pol):
        """{annotation, measurement, calibration, noise} absolute paths of one polarisation (must all exist)."""
        groups = self.groups()
        key = next((g for g in groups if g.count("/") == 1 and g.endswith(f"/{pol}")), None)
        if key is None or len(groups[key]) < 2:
            have = "measurement" if key else "measurement or annotation"
            raise InputError(self.path, f"has no {have} file for {pol}")
        out = {"measurement": groups[key][0], "annotation": groups[key][1], "group": key}
        for role in _FILE_ROLES:
            files = groups.get(f"{key}/{role}")
            if not files:
                what = "calibration" if role == "calibration" else "noise"
                raise InputError(self.path, f"has no {what} file for {pol} (annotation/calibration/{what}-*.xml)")
            out["calibration" if role == "calibration" else "noise"] = files[0]
        return out

    def open_group(self, group, what):
        """An xarray-sentinel metadata group (calibration, gcp); its failures as InputError."""
        try:
            return xarray_sentinel.open_sentinel1_dataset(self.root, fs=self.fs, group=group)
        except (ValueError, KeyError, TypeError, IndexError, OSError, ElementTree.ParseError) as exc:
            raise InputError(self.path, f"{what} of {group} cannot be read ({_first_line(exc)})") from None

    def info(self):
        a = self.attrs
        return {"path": self.path, "name": self.name, "mission": a["mission"], "mode": a["mode"],
                "product_type": a["product_type"], "polarisations": a["polarisations"],
                "start_time": a["start_time"], "stop_time": a["stop_time"], "ipf_version": a["ipf_version"],
                "footprint_lat": a["footprint_lat"], "footprint_lon": a["footprint_lon"]}


def _ipf_text(version):
    """`003.71` -> `3.71`."""
    if not version:
        return "unknown"
    parts = version.split(".")
    try:
        return ".".join([str(int(parts[0]))] + parts[1:2])
    except ValueError:
        return version


def product_info(path):
    """Cheap metadata of a product (manifest only, no pixels): for pairing products with charts.

    Keys: path, name, mission (S1A..S1D), mode (EW, IW), product_type (GRD), polarisations
    (tuple, e.g. ("HH", "HV")), start_time / stop_time (ISO, UTC), ipf_version, footprint_lat /
    footprint_lon (the manifest's footprint corners, degrees).
    """
    return SafeProduct(path).info()


def image_information(product, annotation_path):
    """(lines, samples, range pixel spacing m, azimuth pixel spacing m) from the annotation."""
    data = product.read_bytes(annotation_path, "annotation")
    try:
        info = esa_safe.parse_tag(io.BytesIO(data), "//imageInformation")
        return (int(info["numberOfLines"]), int(info["numberOfSamples"]), float(info["rangePixelSpacing"]),
                float(info["azimuthPixelSpacing"]))
    except (KeyError, TypeError, ValueError, ElementTree.ParseError) as exc:
        raise InputError(product.path, f"annotation {os.path.basename(annotation_path)} has no readable "
                                       f"imageInformation ({_first_line(exc)})") from None


def geolocation_grid(product, group):
    """Grid points as flat float64 arrays: line, pixel, latitude, longitude, incidence, height."""
    gcp = product.open_group(f"{group}/gcp", "geolocation grid")
    lines = np.repeat(gcp["line"].values.astype(np.float64), gcp.sizes["slant_range_time"])
    pixels = np.tile(gcp["pixel"].values.astype(np.float64), gcp.sizes["azimuth_time"])
    out = {"line": lines, "pixel": pixels}
    for name, var in (("latitude", "latitude"), ("longitude", "longitude"), ("incidence", "incidenceAngle"),
                      ("height", "height")):
        out[name] = gcp[var].values.astype(np.float64).ravel()
    if not all(np.isfinite(v).all() for v in out.values()):
        raise InputError(product.path, f"geolocation grid of {group} is not a complete line x pixel grid")
    return out
