# syntax=docker/dockerfile:1
# Tandem, CPU-only image: all three binaries (the GPU worker runs its layers
# with the CPU kernels here), for the cpu-only overlay and for the
# coordinator and CPU worker containers of the gpu overlay.
#
#   docker build -f deploy/docker/cpu.Dockerfile -t tandem:cpu .
#   docker run --rm -v ~/.cache/tandem/models:/models:ro -p 50051:50051 tandem:cpu
#
# Stage 1 builds on Debian 12 with the same package set `make test` uses;
# stage 2 is debian:12-slim with our binaries and exactly the Debian
# packages their shared libraries come from (scripts/runtime-packages.sh
# reads them off ldd in stage 1). The model is never in the image: mount it
# at /models.

FROM debian:12 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN bash scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_CUDA=OFF \
      -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCH=OFF \
 && cmake --build /build -j "$(nproc)" --target tandem tandem-coordinator tandem-cpu-worker tandem-gpu-worker \
 && mkdir -p /out/bin \
 && cp /build/tandem /build/tandem-coordinator /build/tandem-cpu-worker /build/tandem-gpu-worker /out/bin/ \
 && strip /out/bin/* \
 && bash scripts/runtime-packages.sh /out/bin/* > /out/packages.txt

FROM debian:12-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /out/packages.txt /tmp/packages.txt
# Versions are not pinned: the list is whatever the build stage linked
# against, from the same Debian release, installed in the same build.
# hadolint ignore=DL3008
RUN apt-get update \
 && xargs -a /tmp/packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt \
 && groupadd --system --gid 10001 tandem \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tandem
COPY --from=build /out/bin/ /opt/tandem/bin/
ENV PATH=/opt/tandem/bin:$PATH \
    TANDEM_MODEL_DIR=/models
USER 10001:10001
VOLUME ["/models"]
# gRPC API, Prometheus metrics (coordinator); workers: 7001/7002 and 9401/9402 in deploy/k8s.
EXPOSE 50051 9400
ENTRYPOINT ["tandem-coordinator"]
CMD ["--listen", "0.0.0.0:50051", "--metrics", "0.0.0.0:9400"]
