# syntax=docker/dockerfile:1
#
# MedLedger container image: one binary, `medledger`, one subcommand per service.
# The default command runs `medledger dev` (all services in one process on embedded
# backends, all state under /data); docker-compose.yml runs `ingest`, `consent`,
# `query`, `ledger-writer` and `gateway` from it, with key material under /keys
# (created owned by the service user, so a fresh named volume mounted there is
# writable by the one-shot `keys` job). See deploy/README.md.
#
#   docker build -t medledger:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -v medledger-data:/data medledger:0.1.0
#
# Needs BuildKit (default in Docker 23+) for the cache mounts below.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# builder
# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

WORKDIR /src

# The build must never need a database: the code uses runtime-checked sqlx
# queries, and SQLX_OFFLINE keeps any compile-time `query!` macro from dialling one.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

COPY . .

# The registry, git checkouts and target/ live in BuildKit cache mounts so that
# rebuilds are incremental. A cache mount is not part of the image layer, so the
# binary is copied out of target/ inside the same RUN.
RUN --mount=type=cache,id=medledger-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=medledger-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=medledger-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p medledger \
 && install -D -m 0755 target/release/medledger /out/medledger

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

ARG MEDLEDGER_UID=10001
ARG MEDLEDGER_GID=10001

# ca-certificates: outbound TLS (public-chain RPC, OTLP). No curl: the compose
# healthcheck probes with bash's /dev/tcp, Kubernetes probes with httpGet.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid "${MEDLEDGER_GID}" medledger \
 && useradd --system --uid "${MEDLEDGER_UID}" --gid "${MEDLEDGER_GID}" \
        --home-dir /data --no-create-home --shell /usr/sbin/nologin medledger \
 && install -d -m 0750 -o "${MEDLEDGER_UID}" -g "${MEDLEDGER_GID}" /data \
 && install -d -m 0700 -o "${MEDLEDGER_UID}" -g "${MEDLEDGER_GID}" /keys

COPY --from=builder /out/medledger /usr/local/bin/medledger

ENV MEDLEDGER_DATA_DIR=/data \
    MEDLEDGER_LISTEN=0.0.0.0:8080 \
    MEDLEDGER_LOG_FORMAT=json \
    RUST_LOG=info

# Numeric user so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

ENTRYPOINT ["medledger"]
CMD ["dev", "--data-dir", "/data", "--listen", "0.0.0.0:8080"]
