# taskq server image: `docker build -t taskq .` then, with a tokens file made with
# `taskq token create NAME --role admin` (docs/security.md),
#   docker run -p 50051:50051 -v taskq-data:/data -v $PWD/tokens.yaml:/run/secrets/taskq-tokens:ro taskq
# Authentication is on: the server reads its tokens from /run/secrets/taskq-tokens (a Docker or
# Compose secret of that name, or a mounted file; another path with TASKQ_AUTH_TOKENS_FILE) and
# will not start without it. Without authentication, anyone who reaches the port could call
# everything: `-e TASKQ_AUTH_TOKENS_FILE= -e TASKQ_INSECURE=true` says so explicitly.
# Multi-stage: wheels are built in the first stage, the runtime has no build tools. The server
# runs as an unprivileged user, keeps its RocksDB in the /data volume, and is probed with
# `taskq health`. (The project's own machines have no Docker engine: CI checks the same steps,
# wheel -> clean virtualenv -> `taskq serve` -> `taskq health`, in tests/packaging/check.sh.)

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients/python ./clients/python
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients/python .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /data taskq \
    && mkdir /data && chown taskq /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER taskq
VOLUME /data
EXPOSE 50051
ENV TASKQ_LISTEN=0.0.0.0:50051 \
    TASKQ_DATA_DIR=/data \
    TASKQ_LOG_FORMAT=json \
    TASKQ_AUTH_TOKENS_FILE=/run/secrets/taskq-tokens
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
    CMD ["taskq", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["taskq"]
CMD ["serve"]
