"""tfseaice: deep learning on SAR images of sea ice and glaciers (TensorFlow/Keras).

`__version__` is the one place the version is written: setup.py reads it from
this file and `python -m tfseaice --version` prints it, so the package, its
metadata and the model folders it writes (task.json's `tfseaice_version`)
cannot disagree. Scheme (CHANGELOG.md): a release X.Y.Z is the git tag
`vX.Y.Z` and carries exactly "X.Y.Z"; between releases the main branch says
the next release with `.dev0` (PEP 440), so a model trained from an
unreleased tree never claims to come from a release.
"""

__version__ = "0.2.0.dev0"
