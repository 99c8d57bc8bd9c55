"""The lock file: every dependency of setup.py pinned, pins inside setup.py's ranges, and this
environment installed from it (so a passing suite vouches for exactly the locked versions)."""

import importlib.metadata
import pathlib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock-py311.txt"
EXTRAS = ("test", "beam")


def read_lock(text):
    """{canonical name: version} of the `name==version` lines of a pip-style lock (comments skipped)."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==":
            raise ValueError(f"{LOCK.name}: not an exact pin: {line!r}")
        pins[canonicalize_name(req.name)] = spec[0].version
    return pins


def declared_requirements():
    """tfseaice's requirements with the extras the Makefile installs (markers evaluated per extra)."""
    out = []
    for text in importlib.metadata.requires("tfseaice") or ():
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in EXTRAS):
            out.append(req)
    return out


def unmet(pins, requirements):
    """Requirements the pins leave out or pin outside their range."""
    bad = []
    for req in requirements:
        version = pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req} (locked: {version})")
    return bad


def test_lock_pins_every_requirement_inside_its_range():
    pins = read_lock(LOCK.read_text())
    reqs = declared_requirements()
    assert {canonicalize_name(r.name) for r in reqs} >= {"tensorflow", "keras", "apache-beam", "pytest"}
    assert unmet(pins, reqs) == []


def test_the_check_catches_a_missing_or_out_of_range_pin():
    pins = read_lock(LOCK.read_text())
    reqs = [Requirement("numpy>=1.26,<3"), Requirement("pillow>=10,<14")]
    assert unmet(pins, reqs) == []
    assert unmet({**pins, "pillow": "14.0.0"}, reqs) == ["pillow<14,>=10 (locked: 14.0.0)"]
    assert unmet({k: v for k, v in pins.items() if k != "numpy"}, reqs) == ["numpy<3,>=1.26 (locked: None)"]
    with pytest.raises(ValueError, match="not an exact pin"):
        read_lock("numpy>=2\n")


def test_this_environment_is_the_locked_one():
    pins = read_lock(LOCK.read_text())
    drift = {}
    for name, version in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            drift[name] = (version, None)
            continue
        if installed != version:
            drift[name] = (version, installed)
    assert drift == {}, f"installed differently from {LOCK.name} (locked, installed): {drift}"
