# tfseaice with Apache Beam's SDK harness: the worker image of the Dataflow, Flink and Spark
# recipes (docs/scaling.md), and a place to run any tfseaice command (train, evaluate, export).
#
# Why this base: Beam runners start each Python worker through the SDK container's boot
# program (/opt/apache/beam/boot, the image's ENTRYPOINT). Dataflow requires it
# (--sdk_container_image), and Flink/Spark use it with --environment_type=DOCKER. The Beam
# version of the base image must equal the one the pipelines are submitted with, i.e. the
# apache-beam pin of requirements/lock-py311.txt: the build stops if they differ.
#
#   docker build -t tfseaice-beam:0.2.0.dev0 .
#   docker build --build-arg BEAM_VERSION=$(grep '^apache-beam==' requirements/lock-py311.txt | cut -d= -f3) ...
#
# Not run where this file was written (no Docker there): see docs/scaling.md, "What was run".
ARG BEAM_VERSION=2.78.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}
ARG BEAM_VERSION

WORKDIR /opt/tfseaice
# The exact versions the test suite runs with; the package itself without re-resolving them.
COPY requirements/lock-py311.txt requirements/lock-py311.txt
RUN grep -qx "apache-beam==${BEAM_VERSION}" requirements/lock-py311.txt \
        || { echo "apache-beam in requirements/lock-py311.txt is not ${BEAM_VERSION}: pass --build-arg BEAM_VERSION=..."; exit 1; } \
    && pip install --no-cache-dir -r requirements/lock-py311.txt
COPY setup.py README.md LICENSE ./
COPY tfseaice tfseaice
COPY data_prep data_prep
COPY configs configs
RUN pip install --no-cache-dir --no-deps . \
    && python -m tfseaice --version \
    && python -c "import apache_beam, tensorflow, data_prep.ai4arctic_to_tfrecord; print('beam', apache_beam.__version__, 'tf', tensorflow.__version__)"

# tfseaice writes where it is told; keep TensorFlow's C++ logging short in worker logs.
ENV TF_CPP_MIN_LOG_LEVEL=2
# The base image's ENTRYPOINT (/opt/apache/beam/boot) is kept: Beam starts its workers with it.
# To run a tfseaice command instead: docker run --entrypoint python IMAGE -m tfseaice.train ...
