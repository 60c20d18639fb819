# syntax=docker/dockerfile:1
# One image for every Titan component; the entrypoint is the `titan` command:
#   titan operator run | titan execution run | titan phase run <phase> | titan data gateway | titan ledger writer
# Build:  docker build -t titan:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Package metadata first, then the sources mapped into the `titan` namespace (see pyproject.toml).
COPY pyproject.toml README.md ./
COPY core ./core
COPY operator ./operator
COPY phases ./phases
COPY execution ./execution
COPY cli ./cli
COPY proto ./proto
COPY quant ./quant
COPY backtest ./backtest
RUN python -m venv /opt/titan \
 && /opt/titan/bin/pip install . \
 && /opt/titan/bin/python -m compileall -q /opt/titan/lib \
 && /opt/titan/bin/titan --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="titan" \
      org.opencontainers.image.description="Titan trading organism: operator, execution, phases, gateway, ledger writer" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 titan \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin titan
COPY --from=build /opt/titan /opt/titan
ENV PATH=/opt/titan/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TITAN_DATA_DIR=/tmp/titan
USER 10001:10001
WORKDIR /tmp
# gRPC (execution), Prometheus metrics, health
EXPOSE 50051 9100 8080
ENTRYPOINT ["titan"]
CMD ["--help"]
