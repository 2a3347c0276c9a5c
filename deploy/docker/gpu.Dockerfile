# syntax=docker/dockerfile:1
# Tandem, CUDA image: the GPU worker with the CUDA backend (and the other
# binaries, so one image can run any of the three containers).
#
#   docker build -f deploy/docker/gpu.Dockerfile -t tandem:gpu .
#   docker run --rm --gpus all -v ~/.cache/tandem/models:/models:ro tandem:gpu
#
# NVIDIA publishes its nvidia/cuda devel/runtime images for Ubuntu and RHEL
# only; Tandem builds and is tested on Debian 12. So both stages make that
# pair on Debian 12 from NVIDIA's own CUDA apt repository for debian12 — the
# devel stage with nvcc and the headers, the runtime stage with the CUDA
# runtime and cuBLAS (which the GPU worker dlopen()s) and nothing else.
# CUDA_VERSION: the toolkit (the node's driver must support it).
# CUDA_ARCHS: the GPUs to compile for (CMAKE_CUDA_ARCHITECTURES).

ARG CUDA_VERSION=13.0
ARG CUDA_ARCHS="86;89;90"

FROM debian:12 AS build
ARG CUDA_VERSION
ARG CUDA_ARCHS
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
ADD https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
COPY scripts/install-deps.sh scripts/
# hadolint ignore=DL3008
RUN dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
 && bash scripts/install-deps.sh --build-only \
 && v="$(echo "$CUDA_VERSION" | tr . -)" \
 && apt-get install -y --no-install-recommends \
      "cuda-nvcc-$v" "cuda-cudart-dev-$v" "cuda-cccl-$v" "libcublas-dev-$v" \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda-${CUDA_VERSION}/bin:$PATH
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_CUDA=ON \
      "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHS}" -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCH=OFF \
 && cmake --build /build -j "$(nproc)" --target tandem tandem-coordinator tandem-cpu-worker tandem-gpu-worker \
 && mkdir -p /out/bin \
 && cp /build/tandem /build/tandem-coordinator /build/tandem-cpu-worker /build/tandem-gpu-worker /out/bin/ \
 && strip /out/bin/* \
 && bash scripts/runtime-packages.sh /out/bin/* > /out/packages.txt \
 && echo "libcublas-$(echo "$CUDA_VERSION" | tr . -)" >> /out/packages.txt

FROM debian:12-slim
ARG CUDA_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ADD https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
COPY --from=build /out/packages.txt /tmp/packages.txt
# Versions are not pinned: the list is whatever the build stage linked
# against, from the same repositories, installed in the same build.
# hadolint ignore=DL3008
RUN dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb \
 && apt-get update \
 && xargs -a /tmp/packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt \
 && groupadd --system --gid 10001 tandem \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tandem
COPY --from=build /out/bin/ /opt/tandem/bin/
# LD_LIBRARY_PATH: where the GPU worker dlopen()s cuBLAS from. NVIDIA_*:
# what the NVIDIA container runtime reads to mount the driver in.
ENV PATH=/opt/tandem/bin:$PATH \
    LD_LIBRARY_PATH=/usr/local/cuda-${CUDA_VERSION}/targets/x86_64-linux/lib \
    TANDEM_MODEL_DIR=/models \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
VOLUME ["/models"]
EXPOSE 7001 9401
ENTRYPOINT ["tandem-gpu-worker"]
CMD ["--listen", "0.0.0.0:7001", "--metrics", "0.0.0.0:9401"]
