"""The run's own copy of prometheus/prometheus-local.yml, pointed at the run's ports.

The repository's config finds its targets in JSON files (127.0.0.1:8000 and :9100); a run on other
ports copies the config and its rule file into the run directory and writes the target files there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from processes.net import HOST

SOURCE_DIR = Path(__file__).resolve().parent.parent / "prometheus"
SOURCE_CONFIG = SOURCE_DIR / "prometheus-local.yml"
LABELS = {"namespace": "local", "pod": "local"}


def write_config(conf_dir: Path, service_port: int, autoscaler_port: int) -> Path:
    """Write prometheus.yml, its rule files and targets/*.json into `conf_dir`; return the config path."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(SOURCE_CONFIG.read_text())
    for rule_file in config.get("rule_files") or []:
        source = SOURCE_DIR / rule_file
        if source.is_file():
            (conf_dir / rule_file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, conf_dir / rule_file)
    ports = {"resnet18-inference": service_port, "autoscaler": autoscaler_port}
    for job in config.get("scrape_configs", []):
        port = ports.get(job["job_name"])
        if port is None:
            continue
        targets = [{"targets": [f"{HOST}:{port}"], "labels": LABELS}]
        for sd in job.get("file_sd_configs", []):
            for name in sd.get("files", []):
                path = conf_dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(targets, indent=2) + "\n")
        for sc in job.get("static_configs", []):
            sc["targets"] = [f"{HOST}:{port}"]
    path = conf_dir / "prometheus.yml"
    path.write_text("# Generated for this run from prometheus/prometheus-local.yml.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def scrape_interval_s(config_path: Path) -> float:
    text = yaml.safe_load(config_path.read_text()).get("global", {}).get("scrape_interval", "1m")
    units = {"ms": 0.001, "s": 1, "m": 60}
    for suffix in ("ms", "s", "m"):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * units[suffix]
    return float(text)
