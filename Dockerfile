# mcp-warden in a container: a multi-stage build whose runtime image holds the binary and
# the example policy sets only, runs as a non-root user, and needs no writable root
# filesystem (the audit log's state goes on the volume at /var/lib/mcp-warden).
#
#   docker build -t mcp-warden .
#   docker run --read-only -p 8808:8808 -v warden-state:/var/lib/mcp-warden \
#     -v "$PWD/mcp-warden.toml:/etc/mcp-warden/mcp-warden.toml:ro" mcp-warden

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# With OpenTelemetry export (`[tracing]`).
RUN cargo build --release --locked --features otel --bin mcp-warden

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mcp-warden /usr/local/bin/mcp-warden
COPY policies /usr/share/mcp-warden/policies
USER 65532:65532
# The MCP endpoint, and the admin listener (metrics, readiness, admin API).
EXPOSE 8808 8809
VOLUME ["/var/lib/mcp-warden"]
ENTRYPOINT ["/usr/local/bin/mcp-warden"]
CMD ["serve", "--config", "/etc/mcp-warden/mcp-warden.toml", "--log-format", "json"]
