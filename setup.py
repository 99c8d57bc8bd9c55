"""tfseaice: TensorFlow/Keras deep learning on SAR images of sea ice and glaciers."""
import os

from setuptools import find_packages, setup


def _version():
    """tfseaice.__version__, read from the source (the one place it is written) without importing it."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfseaice", "__init__.py")) as f:
        return next(line.split('"')[1] for line in f if line.startswith("__version__"))


setup(
    name="tfseaice",
    version=_version(),
    description=(
        "Weakly supervised sea-ice concentration from ice-chart polygons and "
        "pix2pix glacier SAR synthesis, in TensorFlow/Keras."
    ),
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["tfseaice", "tfseaice.*", "data_prep", "data_prep.*"]),
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.10,<4",
        # TF 2.21 no longer pulls TensorBoard in.
        "tensorboard>=2.20",
        "numpy>=1.26,<3",
        "xarray>=2024.1",
        "netCDF4>=1.7",
        "scikit-image>=0.24",
        # The AutoICE scores, computed as the challenge computes them (r2_score, weighted f1_score).
        "scikit-learn>=1.4",
        # GeoTIFF products georeferenced by ground control points (its wheels bundle GDAL).
        "rasterio>=1.3",
        "scipy>=1.11",
        "absl-py>=2.1",
        "matplotlib>=3.8",
        "pillow>=10,<14",
        "psutil>=5.9",
        # Sentinel-1 GRD products (SAFE folders and zips): annotation, calibration and noise tables.
        "xarray-sentinel>=0.9,<0.10",
        # SIGRID-3 ice charts (shapefile, GeoPackage) in their own CRS, rasterised onto a product grid.
        "pyogrio>=0.9,<1",
        "shapely>=2.0,<3",
        "pyproj>=3.6,<4",
        # A real coastline (GSHHG) for distance_map of Sentinel-1 scenes.
        "roaring-landmask>=0.9,<1",
    ],
    extras_require={
        # Beam < 2.69 caps protobuf < 6 and cannot share an env with TF 2.21.
        "beam": ["apache-beam[tfrecord]>=2.69,<3", "protobuf>=6,<7"],
        "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4"],
    },
)
