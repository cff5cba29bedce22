# Build: docker build -t threatgate .
# Run:   docker run --rm threatgate policy explain /examples/auth-change.json
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/threatgate ./cmd/threatgate

# distroless/static: no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/threatgate /threatgate
COPY --from=build /src/policies/testdata/mr /examples
USER nonroot:nonroot
WORKDIR /data
VOLUME ["/data"]
ENTRYPOINT ["/threatgate"]
CMD ["version"]
