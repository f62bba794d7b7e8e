# One image for every part: `docker run IMAGE gateway -c /etc/tidegate/tidegate.yaml`,
# `... worker -c ... --route NAME --upstream URL`, `... check -c ...`.
#
# Stage 1 builds the wheels (the project's and every dependency's, at the
# versions constraints.txt pins) with the tools that may need; stage 2
# installs only wheels, so the final image has no compiler and no build tools.
#
# The base image goes by tag. To pin it by digest, resolve the tag where a
# registry is reachable (`docker buildx imagetools inspect python:3.11-slim`)
# and write both: FROM python:3.11-slim@sha256:<digest>.

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md constraints.txt ./
COPY tidegate ./tidegate
COPY gateway ./gateway
COPY worker ./worker
COPY scaler ./scaler
COPY shell ./shell
COPY LICENSE ./
# The otel extra (OpenTelemetry SDK and OTLP exporter) goes in: tracing is
# off until OTEL_* variables turn it on, and then needs no other image.
RUN python -m build --wheel --outdir /wheels . \
 && pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels \
      "$(ls /wheels/tidegate-*.whl)[otel]"

FROM python:3.11-slim
# tini as PID 1: it forwards SIGTERM to tidegate and reaps the children the
# scaler's local target starts (a Python PID 1 would leave them as zombies).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# A fixed, non-root UID/GID so that Kubernetes securityContext can name them.
RUN groupadd --system --gid 10001 tidegate \
 && useradd --system --uid 10001 --gid tidegate --no-create-home --home-dir /nonexistent tidegate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'tidegate[otel]' \
 && rm -rf /wheels
# Nothing is written outside /tmp (mount an emptyDir there with a read-only
# root filesystem); Python must not try to write bytecode next to the code.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["tini", "--", "tidegate"]
CMD ["--help"]
