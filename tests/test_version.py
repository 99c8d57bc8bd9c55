"""One version, written once (tfseaice/__init__.py), reported the same by the package, setup.py,
`python -m tfseaice --version`, and consistent with CHANGELOG.md and CITATION.cff.

Why: a model folder records `tfseaice_version`; if setup.py, the package and the changelog
disagree, nobody can tell which code trained it.
"""

import pathlib
import re
import subprocess
import sys

import yaml

import tfseaice
from tfseaice import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def _parts(v):
    return tuple(int(x) for x in v.split(".")[:3])


def test_version_follows_the_scheme():
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", tfseaice.__version__)


def test_setup_py_reads_the_same_version():
    out = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == tfseaice.__version__


def test_module_prints_it(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"tfseaice {tfseaice.__version__}\n"
    assert cli.main(["--bogus"]) == 2


def test_changelog_and_citation_agree_with_the_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = RELEASE.findall(changelog)
    assert releases, "CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' release heading"
    latest, date = releases[0]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(citation["version"]) == latest and str(citation["date-released"]) == date
    version = tfseaice.__version__
    if ".dev" in version:  # between releases: the next one, with an Unreleased section
        assert _parts(version) > _parts(latest) and "## [Unreleased]" in changelog
    else:
        assert version == latest
