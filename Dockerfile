# vip-watchdog in a container, next to Keepalived on the host.
#
# Run it with the host's network and PID namespaces (it probes the local load
# balancer on loopback and watches Keepalived's processes in /proc), the
# config mounted (none is baked in: without one it stops at once, naming the
# missing file), the FIFO's directory, Keepalived's pid files and its TMPDIR
# (the JSON dump) mounted. The complete line is in docs/container.md.
#
# Build args: BASE and BUILDER name the base images; BINARY takes the binary
# from an image that holds it at /vip-watchdog instead of building it (the
# tests do, from a locally made base: no image registry is reachable there).
ARG BASE=debian:12-slim
ARG BUILDER=rust:1.95-bookworm
ARG BINARY=build

FROM ${BUILDER} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin vip-watchdog \
    && cp target/release/vip-watchdog /vip-watchdog

FROM ${BINARY} AS binary

FROM ${BASE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vip-watchdog" \
      org.opencontainers.image.description="Keepalived sidecar: follows VRRP state, probes the local load balancer, keeps the cloud VIP on the MASTER, exports Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="https://github.com/vip-watchdog/vip-watchdog/blob/main/docs/container.md"
# ca-certificates: the EC2 API and https probes. Versions follow the
# Debian 12 point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 vip-watchdog \
    && useradd --system --uid 10001 --gid vip-watchdog --no-create-home \
        --home-dir /var/lib/vip-watchdog --shell /usr/sbin/nologin vip-watchdog \
    && mkdir -p /var/lib/vip-watchdog /run/vip-watchdog /etc/vip-watchdog \
    && chown vip-watchdog:vip-watchdog /var/lib/vip-watchdog /run/vip-watchdog
COPY --from=binary /vip-watchdog /usr/bin/vip-watchdog
# A fixed id, so that mounted directories can be handed to it.
USER 10001:10001
EXPOSE 9842
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD ["/usr/bin/vip-watchdog", "health", "--config", "/etc/vip-watchdog/vip-watchdog.toml"]
ENTRYPOINT ["/usr/bin/vip-watchdog"]
CMD ["run", "--config", "/etc/vip-watchdog/vip-watchdog.toml"]
