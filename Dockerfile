# Multi-stage build: a locked release build, then a small non-root runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# The checked SQL compiles from its committed offline data: no database at build time.
COPY .sqlx ./.sqlx
ENV SQLX_OFFLINE=true
RUN cargo build --locked --release && strip target/release/slm-server

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home slm
COPY --from=build /src/target/release/slm-server /usr/local/bin/slm-server
USER 10001
ENV BIND_ADDR=0.0.0.0:8000 ENVIRONMENT=prod
EXPOSE 8000
# The image has no curl: the binary checks itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["slm-server", "healthcheck"]
ENTRYPOINT ["slm-server"]
CMD ["serve"]
