# The `daily` binary in a small image: `docker build -t daily .`, then `docker run daily worker`.
# Two stages: the first compiles the dependencies from the manifests alone (a layer that a
# change to a task does not invalidate), then the project's own crates; the second holds the
# binary and nothing else.
FROM rust:1.95-slim-bookworm AS build
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
                tests/src/bin/data_pipeline.rs tests/benches/events.rs \
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

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/daily /usr/local/bin/daily
# Configuration comes from the environment (PIPELINE_STATE_URL, PIPELINE_DB_*_URL, ...);
# the embedded SQLite files, if used, go to /data.
WORKDIR /data
ENTRYPOINT ["daily"]
CMD ["worker"]
