# Build: docker build -t threatgate .
# Run:   docker run --rm threatgate policy explain /examples/auth-change.json
# Serve: README.md, "Running in Docker" (listen on 0.0.0.0:8080, data_dir /data)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/threatgate ./cmd/threatgate
# The data directory, owned by the user threatgate runs as, so that a
# named volume mounted on it starts out writable.
RUN mkdir -p /out/data && chmod 700 /out/data

# distroless/static: no shell, no package manager; runs as uid 65532.
# No HEALTHCHECK: without a shell or curl there is nothing to run it with;
# probe GET /healthz and GET /readyz on port 8080 from outside (README.md).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/threatgate /threatgate
COPY --from=build /src/policies/testdata/mr /examples
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
WORKDIR /data
VOLUME ["/data"]
# serve listens here when the config says listen: 0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/threatgate"]
CMD ["version"]
