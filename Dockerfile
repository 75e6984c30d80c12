# dtr-sizing-exporter: build with `docker build -t dtr-sizing-exporter .`
# BASE_IMAGE is any image with python3 (3.10+) and its venv module; both stages
# use it, so the virtual environment copied across finds the same interpreter.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# pip settings of the build host (index mirror, CA bundle), given as build
# args so none is baked into the Dockerfile or the image.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# A wheel of the package, then a venv holding only it and its dependencies:
# the sources and the build tools stay in this stage, and pip leaves the venv
# (uninstalling it works with the old pip some bases bundle; --python needs 22.3).
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-deps --wheel-dir /dist . \
 && python3 -m venv /opt/dtr-sizing-exporter \
 && /opt/dtr-sizing-exporter/bin/pip install /dist/*.whl \
 && /opt/dtr-sizing-exporter/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="dtr-sizing-exporter" \
      org.opencontainers.image.description="Prometheus exporter that measures a DTR / Distribution registry node against Docker's KB sizing rules" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DTR_SIZING_HEALTHCHECK_URL=http://127.0.0.1:9742/-/healthy
COPY --from=build /opt/dtr-sizing-exporter /opt/dtr-sizing-exporter
# The growth history's directory (--storage.state-dir), owned by the runtime
# user: a named volume mounted here starts with that ownership.
RUN mkdir -p /var/lib/dtr-sizing-exporter \
 && chown 65534:65534 /var/lib/dtr-sizing-exporter
# nobody:nogroup by number, so runAsNonRoot can verify it; it owns nothing here.
USER 65534:65534
EXPOSE 9742
# Python itself, so the image needs no curl. Set DTR_SIZING_HEALTHCHECK_URL
# with --web.listen-address; with TLS or basic auth use --health-cmd instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/opt/dtr-sizing-exporter/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DTR_SIZING_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["/opt/dtr-sizing-exporter/bin/dtr-sizing-exporter"]
