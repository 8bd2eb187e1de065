"""A prototype-style service, the reference point of the benchmark: what a first version usually is.

One plain Flask route, gunicorn sync workers, one image per forward, NCHW eager model, torchvision's
transform pipeline, torch threads left at their default. It is not used anywhere but `make bench`.
"""

import io

import torch
import torchvision
from flask import Flask, jsonify, request
from PIL import Image
from torchvision import transforms

app = Flask(__name__)
model = torchvision.models.resnet18(weights=None).eval()
transform = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


@app.route("/predict", methods=["POST"])
def predict():
    image = Image.open(io.BytesIO(request.get_data())).convert("RGB")
    with torch.no_grad():
        probs = torch.softmax(model(transform(image).unsqueeze(0)), dim=1)[0]
    score, index = probs.max(0)
    return jsonify(index=int(index), score=float(score))


@app.route("/readyz")
def ready():
    return "ok"
