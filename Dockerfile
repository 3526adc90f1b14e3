# syntax=docker/dockerfile:1.7
# f5-worker GPU image: Ubuntu 24.04 (Python 3.12) on NVIDIA's CUDA 12.8 base, torch 2.9.1+cu128, flash-attn, f5-worker,
# and the F5-TTS weights, all fixed at BUILD time. At start nothing is installed or downloaded (HF_HUB_OFFLINE=1):
# the worker loads /opt/f5-worker/model, warms up and polls SQS.
#
#   docker build -t f5-worker:1.0 \
#     --build-arg FLASH_ATTN_WHEEL=https://.../flash_attn-2.8.3+cu12torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl \
#     --build-arg MODEL_REVISION=<commit of SWivid/F5-TTS> --build-arg MODEL_SHA256=<sha256 of the checkpoint> .
#
# Local weights instead of the hub: --build-context model-src=/dir/with/weights
#   --build-arg MODEL_REPO=/model-src --build-arg VOCODER_REPO=/model-src/vocoder (see docs/deploying.md).
# Speech recognition for reference clips sent without a transcript (optional):
#   --build-arg ASR_MODEL=openai/whisper-large-v3-turbo --build-arg ASR_REVISION=<commit>
# Elsewhere (no CUDA base, no registry): BASE_IMAGE, API_BASE_IMAGE, PYTHON, TORCH_INDEX_URL= (pip's configured
# index) and FLASH_ATTN_WHEEL=none build the same stages; `bash scripts/image` does that with buildah and checks
# what it built. Every default below is the production build's.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
ARG API_BASE_IMAGE=python:3.12.8-slim-bookworm

# ---- base: Python 3.12, tini and the non-root user; shared by every stage -----------------------------------------
FROM ${BASE_IMAGE} AS base
# The Python the base provides as a Debian/Ubuntu package: python3.12 on Ubuntu 24.04, python3.11 on Debian 12.
ARG PYTHON=python3.12
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu's own packages track security updates within 24.04; the image is rebuilt, not patched.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates "${PYTHON}" "${PYTHON}-venv" tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin worker

# ---- model-src: empty unless --build-context model-src=DIR supplies local weights ---------------------------------
FROM scratch AS model-src

# ---- weights: fetched and sha256-verified here, in a stage that code changes do not invalidate ---------------------
FROM base AS weights
ARG F5_TTS_VERSION=1.1.22
ARG PYTHON=python3.12
# Optional: a pip configuration for this build's pip steps (a private index, a proxy's CA), mounted read-only
# where the base already has a directory (buildah -v DIR:/mnt:ro, PIP_CONFIG_FILE=/mnt/pip.conf), so that
# neither it nor a mount point lands in a layer. Unset: pip's defaults.
ARG PIP_CONFIG_FILE
RUN --mount=type=cache,target=/root/.cache/pip \
    "${PYTHON}" -m venv /opt/prep \
    && /opt/prep/bin/pip install "huggingface_hub==1.33.0" "pyyaml==6.0.4" \
    && /opt/prep/bin/pip install --no-deps "f5-tts==${F5_TTS_VERSION}"
COPY consumer/__init__.py /build/consumer/__init__.py
COPY consumer/core/__init__.py consumer/core/errors.py /build/consumer/core/
COPY contracts/__init__.py contracts/codes.py /build/contracts/
COPY consumer/engine/model_spec.py /build/consumer/engine/model_spec.py
COPY docker/prepare_weights.py /build/docker/prepare_weights.py
ARG MODEL_REPO=SWivid/F5-TTS
ARG MODEL_FILE=F5TTS_v1_Base/model_1250000.safetensors
ARG MODEL_REVISION=main
ARG MODEL_SHA256=""
# The architecture: an f5-tts config name, or a model.json / JSON file in model-src (/model-src/model.json).
ARG MODEL_ARCH=F5TTS_v1_Base
ARG VOCODER_REPO=charactr/vocos-mel-24khz
ARG VOCODER_REVISION=main
ARG VOCODER_SHA256=""
ARG ASR_MODEL=""
ARG ASR_REVISION=main
ENV HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1
# An empty MODEL_SHA256 fails the build: prepare_weights.py refuses unverified weights. Its errors name the
# build argument to set (--build-args).
RUN --mount=type=bind,from=model-src,target=/model-src \
    /opt/prep/bin/python /build/docker/prepare_weights.py --build-args --out /opt/f5-worker/model \
      --model-repo "${MODEL_REPO}" --model-file "${MODEL_FILE}" --model-revision "${MODEL_REVISION}" \
      --model-sha256 "${MODEL_SHA256}" --arch "${MODEL_ARCH}" \
      --vocoder "${VOCODER_REPO}" --vocoder-revision "${VOCODER_REVISION}" --vocoder-sha256 "${VOCODER_SHA256}" \
      --asr-model "${ASR_MODEL}" --asr-revision "${ASR_REVISION}"

# ---- build: torch, flash-attn (checked to import against this torch/CUDA/Python), then f5-worker -----------------
FROM base AS build
ARG PYTHON=python3.12
ARG PIP_CONFIG_FILE
# Empty: pip's configured index (on PyPI, torch 2.9.1 for Linux is the CUDA 12.8 build with its nvidia-* wheels).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# A flash-attn wheel built for torch 2.9 + CUDA 12 + cp312 + cxx11abiTRUE (torch's own ABI); PyPI has sources only.
# "none" is an explicit choice: no flash-attn, attention runs on torch's SDPA (printed in the build log).
ARG FLASH_ATTN_WHEEL=""
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# Pinned (torch==2.9.1); hadolint cannot read the pins past the optional index argument.
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    "${PYTHON}" -m venv /opt/venv \
    && pip install ${TORCH_INDEX_URL:+--index-url "${TORCH_INDEX_URL}"} "torch==2.9.1" "torchaudio==2.9.1"
# The wheel URL names one exact build (hadolint cannot see a version in a URL).
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    case "${FLASH_ATTN_WHEEL}" in \
      "") echo "FLASH_ATTN_WHEEL is required: set it to the URL of a flash-attn wheel for torch 2.9, CUDA 12, cp312, cxx11abiTRUE, or to none (torch SDPA)" >&2; exit 1 ;; \
      none) echo "FLASH_ATTN_WHEEL=none: no flash-attn; attention runs on torch SDPA" ;; \
      http://*.whl|https://*.whl|/*.whl) pip install "${FLASH_ATTN_WHEEL}" \
        && python -c "import torch, flash_attn; print('flash-attn', flash_attn.__version__, 'torch', torch.__version__)" ;; \
      *) echo "FLASH_ATTN_WHEEL=${FLASH_ATTN_WHEEL} is neither a .whl URL nor none: set it to a flash-attn wheel's URL or to none" >&2; exit 1 ;; \
    esac
# f5-worker's dependencies only, from pyproject.toml and an empty package skeleton: this layer (and the 9 GB venv
# the runtime copies) changes with the dependencies, not with the code. f5-worker itself arrives as a wheel
# (stage `app`), a layer of a few hundred kB. torch pinned again so that resolving f5-tts keeps the CUDA build
# installed above; the import check runs again because a dependency that replaced torch would break
# flash-attn's ABI silently.
COPY pyproject.toml /src/
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir -p /src/consumer /src/contracts && touch /src/README.md /src/consumer/__init__.py /src/contracts/__init__.py \
    && pip install ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} "/src[engine]" "torch==2.9.1" "torchaudio==2.9.1" \
    && pip uninstall --yes f5-worker && rm -rf /src \
    && python -c "import f5_tts.model, torch; assert torch.__version__.startswith('2.9.1'), torch.__version__" \
    && if [ "${FLASH_ATTN_WHEEL}" != none ]; then python -c "import flash_attn"; fi

# ---- app: f5-worker as a wheel (the only part that changes with the code) -----------------------------------------
FROM build AS app
ARG PIP_CONFIG_FILE
COPY pyproject.toml README.md /src/
COPY contracts /src/contracts
COPY consumer /src/consumer
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels /src

# ---- api: the HTTP door alone, no torch, no GPU (docker build --target api -t f5-worker-api .) ----------------------
# It refuses to start without F5_WORKER_API_KEY_HASHES on 0.0.0.0 (keyless mode is for loopback only).
FROM ${API_BASE_IMAGE} AS api
ARG PIP_CONFIG_FILE
# A venv, so that the same steps build on a base whose Python is the distribution's (PEP 668).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    F5_WORKER_API_HOST=0.0.0.0 \
    F5_WORKER_API_PORT=8000 \
    F5_WORKER_LOG_JSON=true
COPY pyproject.toml README.md /src/
COPY contracts /src/contracts
COPY consumer /src/consumer
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "/src[api]" \
    && rm -rf /src \
    && python -c "import consumer.api.app" \
    && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the API image" >&2; exit 1; fi
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["f5-worker", "api"]

# ---- runtime (the default target: the GPU worker) -----------------------------------------------------------------
FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=weights /opt/f5-worker/model /opt/f5-worker/model
COPY --from=app /wheels /tmp/wheels
COPY --chmod=0755 docker/multi-gpu.sh /usr/local/bin/f5-worker-multi-gpu
ARG ASR_MODEL=""
# Offline by construction; every cache and scratch path under /tmp (the root filesystem can be read-only).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    F5_WORKER_MODEL_DIR=/opt/f5-worker/model \
    F5_WORKER_ASR_MODEL=${ASR_MODEL:+/opt/f5-worker/model/asr} \
    F5_WORKER_HEALTH_PORT=8080 \
    F5_WORKER_CACHE_DIR=/tmp/f5-worker \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# The image refuses to exist if the model directory or the CLI is broken.
RUN /opt/venv/bin/pip install --no-deps --no-index --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && /opt/venv/bin/python -c "import consumer.engine.f5" \
    && /opt/venv/bin/python -c "from consumer.engine.model_spec import load_model_dir; print(load_model_dir('/opt/f5-worker/model'))" \
    && /opt/venv/bin/f5-worker --help > /dev/null \
    && if [ -n "${ASR_MODEL}" ]; then \
      python -c "from transformers import pipeline; pipeline('automatic-speech-recognition', model='/opt/f5-worker/model/asr')"; \
    fi
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
STOPSIGNAL SIGTERM
# Healthy = /readyz (model loaded, AWS answered) and /healthz ("polled SQS within F5_WORKER_HEALTH_MAX_POLL_AGE_S");
# unhealthy while the model loads, which the start period covers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 CMD ["f5-worker", "check"]
ENTRYPOINT ["tini", "--"]
CMD ["f5-worker", "run"]
