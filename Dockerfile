# The inference service: docker build -t resnet18-inference:latest .
# Skip baking the ImageNet weights (offline builds; then run with MODEL_WEIGHTS=random or a mounted
# state dict): docker build --build-arg BAKE_WEIGHTS=0 -t resnet18-inference:latest .
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG BAKE_WEIGHTS=1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TORCH_HOME=/opt/torch \
    MODEL_CACHE_DIR=/opt/model-cache \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc

WORKDIR /app

# CPU-only wheels: the default PyPI build of torch carries gigabytes of CUDA libraries.
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch==2.14.1 torchvision==0.29.1
COPY requirements-service.txt .
RUN pip install --no-cache-dir -r requirements-service.txt

# Weights go into the image so pods start without network access to download.pytorch.org.
RUN if [ "$BAKE_WEIGHTS" = "1" ]; then \
      python -c "from torchvision.models import ResNet18_Weights as W; W.IMAGENET1K_V1.get_state_dict(progress=False)"; \
    fi

# settings/: the settings machinery inference/config.py declares its fields with.
COPY settings/ settings/
COPY inference/ inference/

# The model converted for OpenVINO/ONNX Runtime goes into the image too, keyed by the weights' hash, so a
# new pod's workers load it instead of exporting it before they turn ready.
RUN if [ "$BAKE_WEIGHTS" = "1" ]; then MODEL_WEIGHTS=imagenet python -m inference.model --convert; fi \
 && MODEL_WEIGHTS=random python -m inference.model --convert

# Numeric UID and GID so Kubernetes' runAsNonRoot can verify them (the Deployment runs it as 10001).
RUN groupadd --system --gid 10001 inference \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin inference
USER 10001:10001

EXPOSE 8000
CMD ["gunicorn", "-c", "inference/gunicorn.conf.py"]
