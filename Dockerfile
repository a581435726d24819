# The `daily` binary in a small image: `docker build -t daily .`, then `docker run daily worker`.
# The build stage compiles the dependencies from the manifests alone (a layer that a change to
# a task does not invalidate), then the project's own crates; the runtime holds the binary, CA
# certificates and a user to run as, nothing else.
#
# The base images are build arguments (a registry mirror, a pinned digest, a local base):
#   --build-arg RUST_IMAGE=... --build-arg RUNTIME_IMAGE=...
# A binary built elsewhere (same glibc as the runtime base: Debian bookworm) goes in without
# the build stage: `--target prebuilt`, with the binary as `daily` in the build context (or
# --build-arg BINARY=path/in/context).
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY pipeline-macros/Cargo.toml pipeline-macros/
COPY pipeline-core/Cargo.toml pipeline-core/
COPY pipeline-example/Cargo.toml pipeline-example/
COPY tests/Cargo.toml tests/
# Stand-ins for every target the manifests name, so that cargo builds the dependencies only.
RUN for lib in pipeline-macros pipeline-core pipeline-example tests; do \
        mkdir -p "$lib/src" && : > "$lib/src/lib.rs"; \
    done && \
    for main in pipeline-example/src/bin/daily.rs pipeline-example/src/bin/publish_demo_events.rs \
                tests/src/bin/data_pipeline.rs tests/src/bin/lineage_pipeline.rs \
                tests/benches/events.rs \
                tests/src/bin/e2e_pipeline.rs tests/src/bin/wrong_crate.rs \
                pipeline-core/benches/executor.rs pipeline-core/benches/load.rs \
                pipeline-core/benches/compile.rs pipeline-core/benches/schedule.rs \
                pipeline-core/benches/distributed.rs pipeline-core/benches/serve.rs \
                pipeline-core/benches/scale.rs; do \
        mkdir -p "$(dirname "$main")" && echo 'fn main() {}' > "$main"; \
    done && \
    cargo build --release --locked -p pipeline-example --bin daily
COPY . .
# The sources are older than the stand-ins' build: make cargo see them as changed.
RUN find pipeline-macros pipeline-core pipeline-example tests -name '*.rs' -exec touch {} + && \
    cargo build --release --locked -p pipeline-example --bin daily

FROM ${RUNTIME_IMAGE} AS runtime
# CA certificates for TLS to databases, APIs and NATS (a base that has them skips apt).
RUN if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi && \
    groupadd --gid 10001 daily && \
    useradd --no-log-init --uid 10001 --gid 10001 --home-dir /data --create-home --shell /usr/sbin/nologin daily
# Configuration comes from the environment (PIPELINE_STATE_URL, PIPELINE_DB_*_URL, ...);
# the embedded SQLite files, if used, go to /data. Never root: a task's code runs here.
WORKDIR /data
USER 10001:10001
# `docker stop` sends SIGTERM to PID 1, which is `daily`: a worker stops claiming, lets running
# attempts end within --grace-secs (30) and hands back the rest; give the container longer.
STOPSIGNAL SIGTERM
ENTRYPOINT ["daily"]
CMD ["worker"]

FROM runtime AS prebuilt
ARG BINARY=daily
COPY ${BINARY} /usr/local/bin/daily

# The default target, last: the binary compiled in the build stage.
FROM runtime
COPY --from=build /src/target/release/daily /usr/local/bin/daily
