# One image for every part: `docker run IMAGE gateway -c /etc/tidegate/tidegate.yaml`,
# `... worker -c ... --route NAME --upstream URL`, `... check -c ...`.
#
# Stage 1 builds the wheels (the project's and every dependency's) with the
# tools that may need; stage 2 installs only wheels, so the final image has no
# compiler and no build tools.

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY tidegate ./tidegate
COPY gateway ./gateway
COPY worker ./worker
COPY scaler ./scaler
RUN python -m build --wheel --outdir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/tidegate-*.whl

FROM python:3.11-slim
# A fixed, non-root UID/GID so that Kubernetes securityContext can name them.
RUN groupadd --system --gid 10001 tidegate \
 && useradd --system --uid 10001 --gid tidegate --no-create-home --home-dir /nonexistent tidegate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels tidegate \
 && rm -rf /wheels
# Nothing is written outside /tmp (mount an emptyDir there with a read-only
# root filesystem); Python must not try to write bytecode next to the code.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["tidegate"]
CMD ["--help"]
