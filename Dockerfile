# vip-watchdog in a container, next to Keepalived on the host.
#
# Run it with the host's network and PID namespaces (it probes the local load
# balancer on loopback and watches Keepalived's processes in /proc), with the
# FIFO's directory and Keepalived's pid files mounted, and with
# `keepalived.json_signal` set in the config (this image has no keepalived
# binary to ask). See docs/operations.md.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin vip-watchdog

FROM debian:12-slim
# ca-certificates for https probes; versions follow the Debian 12 point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/vip-watchdog /usr/local/bin/vip-watchdog
COPY examples/vip-watchdog.toml /etc/vip-watchdog/vip-watchdog.toml
EXPOSE 9842
ENTRYPOINT ["/usr/local/bin/vip-watchdog"]
CMD ["run", "--config", "/etc/vip-watchdog/vip-watchdog.toml"]
