"""Autoscaler for the ResNet-18 service: PromQL in, replicas out (`python -m autoscaler`)."""
