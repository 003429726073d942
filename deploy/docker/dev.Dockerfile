# syntax=docker/dockerfile:1
#
# Development images for the Tilt loop (see the Tiltfile). The binary is
# compiled outside (`cargo build --target-dir target/tilt`, Debian bookworm
# glibc; the Tiltfile's `build-in-container` setting compiles inside
# rust:1-bookworm instead) and only copied in here, so an image build takes
# seconds; after that, Tilt's live update syncs a new binary into the running
# container and restarts the process (tilt-extensions restart_process: it
# needs a shell, so the base is debian:bookworm-slim, never distroless).
#
# The binary lives in /usr/local/lib/rds-csi. The dev overlay mounts an
# emptyDir at /opt/rds-csi and an init container copies the binary there, so
# live update can replace it and touch the restart file while the root
# filesystem stays read-only (as in prod). The release images (Dockerfile)
# keep /usr/local/bin, root-owned.
#
#   docker build -f deploy/docker/dev.Dockerfile --target node    --build-arg BIN=csi-frontend target/tilt/debug
#   docker build -f deploy/docker/dev.Dockerfile --target service --build-arg BIN=rds-agent    target/tilt/debug
#
# Context: the directory holding the binary. BIN: the binary's name.

ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/rds-csi /usr/local/lib/rds-csi

# Same node tools as the release csi-frontend image.
FROM base AS node-base
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        nvme-cli e2fsprogs xfsprogs util-linux mount \
    && rm -rf /var/lib/apt/lists/* \
    # nvme-cli's postinst wrote a host NQN and host ID here: baked into the
    # image, every node would present the same identity. The node plugin
    # passes its own per-node identity to nvme connect instead.
    && rm -f /etc/nvme/hostnqn /etc/nvme/hostid

# csi-frontend (its node role needs the tools).
FROM node-base AS node
ARG BIN
COPY ${BIN} /usr/local/lib/rds-csi/${BIN}
USER 65532:65532

# attachment-service, event-service, rds-agent, rds-sim.
FROM base AS service
ARG BIN
COPY ${BIN} /usr/local/lib/rds-csi/${BIN}
USER 65532:65532
