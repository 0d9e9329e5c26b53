# syntax=docker/dockerfile:1
# The orchestrator image: built with a pinned Rust toolchain, run from a
# distroless base (no shell, no package manager) as numeric user 1000.
# Built without the default `embedded-cluster` feature: the image has no
# Kubernetes API simulator (`serve --embedded-cluster` and `sim` are not in
# it); it runs against a real cluster only.
# Build: ./build.sh (or docker build -t orchestrator .). compose.yaml builds a
# development image with FEATURES=embedded-cluster (the simulators in).

FROM rust:1.95.0-bookworm AS builder
# The commit, for the orchestrator_build_info metric (build.rs reads it).
ARG GIT_SHA=unknown
# Cargo features beyond none (compose.yaml: embedded-cluster).
ARG FEATURES=
WORKDIR /src
# Dependency layer: the manifests and empty targets only, so a source change
# does not rebuild every dependency.
COPY Cargo.toml Cargo.lock ./
COPY crates/kube-api-sim/Cargo.toml crates/kube-api-sim/Cargo.toml
COPY crates/github-api-sim/Cargo.toml crates/github-api-sim/Cargo.toml
COPY scripts/stub-targets.sh scripts/stub-targets.sh
RUN sh scripts/stub-targets.sh \
    && cargo build --release --locked --no-default-features --features "${FEATURES}" --bin orchestrator \
    && rm -rf src benches crates/kube-api-sim/src crates/kube-api-sim/benches crates/github-api-sim/src
COPY . .
RUN touch src/main.rs src/lib.rs crates/kube-api-sim/src/lib.rs crates/github-api-sim/src/lib.rs \
    && cargo build --release --locked --no-default-features --features "${FEATURES}" --bin orchestrator \
    && cp target/release/orchestrator /orchestrator

# distroless/cc: glibc, libgcc and CA certificates; nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="orchestrator" \
      org.opencontainers.image.description="Turns GitHub, Grafana, PM Agent and CLI events into Kubernetes Jobs that run AI coding agents" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}"
COPY --from=builder /orchestrator /usr/local/bin/orchestrator
ENV SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    LOG_FORMAT=json
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/orchestrator", "healthcheck", "--url", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/usr/local/bin/orchestrator"]
CMD ["serve"]
