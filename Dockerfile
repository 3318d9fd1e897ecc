# Image for the project's Python components (producer, dataflow, training).
# docker-compose.yml builds it for the `producer` and `dataflow` services; the default
# command runs the features dataflow.
#
# bookworm's glibc (2.36) satisfies the manylinux wheels of bytewax (2.31) and torch (2.28).
# The only thing compiled is the project's own hot path (mypyc, see setup.py), with a C
# compiler that is removed again in the same layer.
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from PyTorch's CPU-only index: the default PyPI build for Linux pulls several
# GB of CUDA libraries. The version must equal the pin in pyproject.toml, so that the
# `pip install .` below finds it already satisfied and keeps this build. Its own layer, so
# changing the project's code does not download torch again.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The packages listed in pyproject.toml's [tool.setuptools.packages.find]. README.m[d] is a
# glob so that the build does not fail while the README is missing (setuptools only warns).
COPY pyproject.toml setup.py README.m[d] ./
COPY common ./common
COPY events ./events
COPY broker ./broker
COPY features ./features
COPY producers ./producers
COPY dataflows ./dataflows
COPY models ./models
COPY slates ./slates
COPY reporting ./reporting
COPY demo ./demo
COPY experiments ./experiments
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && rm -rf common events broker features producers dataflows models slates reporting demo experiments setup.py build
# ^ the sources leave /app once installed: first on sys.path there, they would run instead of
#   the compiled modules in site-packages.

# Run as an unprivileged user. /app/artifacts (model, mounted by compose) and /recovery
# (optional Bytewax recovery volume) are created here and owned by it, so named volumes
# mounted there inherit a writable owner.
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /app/artifacts /recovery \
    && chown app:app /app/artifacts /recovery
USER app

CMD ["python", "-m", "bytewax.run", "dataflows.features"]
