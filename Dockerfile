# syntax=docker/dockerfile:1
# The inference service. Two ways to build it, one runtime image (no torch: OpenVINO and ONNX Runtime run the
# model converted to ONNX, about a third of the size of an image with torch; docs/kubernetes.md):
#
# - From the package indexes, inside the build (what `docker build` does as it is):
#     docker build -t resnet18-inference:latest .
#   The model-build stage installs torch's CPU wheels from PyTorch's CPU index, downloads the ImageNet
#   weights (BAKE_WEIGHTS=1) and converts them and the seeded random weights to ONNX; only the converted
#   files reach the runtime image.
# - From a prepared build context, with no download at all (air-gapped machines, proxies that inspect TLS,
#   and `make images`, which prepares it):
#     python -m containers context      # converts on the host, downloads the wheels into containers/offline/
#     docker build --build-arg MODEL_FROM=context --build-arg WHEELS_FROM=context -t resnet18-inference:latest .
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
# Where the converted model comes from: `build` (the model-build stage below) or `context` (containers/offline/).
ARG MODEL_FROM=build
# Where the runtime's wheels come from: `index` (PyPI, or pip's configured index) or `context` (containers/offline/).
ARG WHEELS_FROM=index

# --- the converted model, made here with torch ---
FROM ${BASE_IMAGE} AS model-build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG BAKE_WEIGHTS=1
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TORCH_HOME=/tmp/torch MODEL_CACHE_DIR=/opt/model-cache
WORKDIR /app
COPY requirements-model.txt containers/constraints.txt ./
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" -c constraints.txt torch torchvision \
 && pip install --no-cache-dir -c constraints.txt -r requirements-model.txt
COPY settings/ settings/
COPY inference/ inference/
RUN MODEL_WEIGHTS=random python -m inference.model --convert \
 && if [ "$BAKE_WEIGHTS" = "1" ]; then MODEL_WEIGHTS=imagenet python -m inference.model --convert; fi

# --- or the converted model from the build context (`python -m containers context` wrote it) ---
FROM scratch AS model-context
COPY containers/offline/model-cache/ /opt/model-cache/

FROM model-${MODEL_FROM} AS model

# --- the runtime's wheels: none here (pip downloads them), or the ones in the build context ---
FROM scratch AS wheels-index
COPY containers/constraints.txt /wheels/.keep
FROM scratch AS wheels-context
COPY containers/offline/wheels/ /wheels/
FROM wheels-${WHEELS_FROM} AS wheels

# --- the runtime image ---
FROM ${BASE_IMAGE} AS runtime
ARG WHEELS_FROM
# PYTHONPATH: the project's packages below are imported from /app whatever the entry point (the gunicorn
# script's own directory is not /app).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    MODEL_CACHE_DIR=/opt/model-cache \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
WORKDIR /app
COPY requirements-service.txt containers/constraints.txt ./
# The wheels are mounted, not copied: they leave no layer behind. In the same layer, what the service never
# loads goes (about 100 MB: a third of the image's packages): OpenVINO's GPU and NPU plugins and its
# frontends for other model formats (it reads ONNX), its C++ headers, ONNX Runtime's Python tools (model
# transformers, quantization) and numpy's tests. tests/test_images.py serves from the result.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check $([ "$WHEELS_FROM" = context ] && echo --no-index) \
      --find-links /wheels -c constraints.txt -r requirements-service.txt \
 && site=$(python -c 'import importlib.util as u; print(u.find_spec("openvino").submodule_search_locations[0])')/.. \
 && rm -rf "$site"/openvino/libs/libopenvino_intel_gpu_plugin.so "$site"/openvino/libs/libopenvino_intel_npu_plugin.so \
      "$site"/openvino/libs/cache.json "$site"/openvino/include \
      "$site"/openvino/libs/libopenvino_gguf_frontend.so.* "$site"/openvino/libs/libopenvino_jax_frontend.so.* \
      "$site"/openvino/libs/libopenvino_paddle_frontend.so.* "$site"/openvino/libs/libopenvino_pytorch_frontend.so.* \
      "$site"/openvino/libs/libopenvino_tensorflow_frontend.so.* "$site"/openvino/libs/libopenvino_tensorflow_lite_frontend.so.* \
      "$site"/onnxruntime/transformers "$site"/onnxruntime/quantization "$site"/onnxruntime/tools \
      "$site"/numpy/tests "$site"/numpy/*/tests
# Copied with the modes they were written with: inference/model_cache.py makes them readable by every user
# (the build converts as root, the pod runs as 10001).
COPY --from=model /opt/model-cache/ /opt/model-cache/
# settings/: the settings machinery inference/config.py declares its fields with; processes/ready_marker.py:
# the readiness marker a warm worker writes.
COPY settings/ settings/
COPY processes/__init__.py processes/ready_marker.py processes/
COPY inference/ inference/
# Numeric UID and GID so Kubernetes' runAsNonRoot can verify them (the Deployment runs it as 10001).
RUN groupadd --system --gid 10001 inference \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin inference
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "inference/gunicorn.conf.py"]
