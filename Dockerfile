# rollgate controller image.
#
# Stage 1 builds the binary with a locked release build; stage 2 is a distroless image with
# glibc and CA certificates only: no shell, no package manager, a numeric non-root user, and
# nothing written at run time (the controller keeps its state in the cluster), so it runs
# with readOnlyRootFilesystem. CI builds the binary with the same cargo command
# (.ci/ship.sh checks that this file still runs exactly that command).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest, the lock file, the sources and the bench targets
# Cargo.toml declares (cargo refuses a manifest whose declared targets are missing).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

# The same Debian release as the build stage, so the glibc the binary links against is there.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/rollgate /usr/local/bin/rollgate
# distroless' "nonroot" user, by number so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# /metrics and /healthz, /readyz (the controller's default bind addresses).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/rollgate"]
CMD ["controller"]
