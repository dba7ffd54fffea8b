"""Pure detection core (no Kafka, no I/O): prompt features, windows, baselines, scoring, drift,
cluster detection, alert lifecycle and state snapshots. See docs/DETECTION.md."""

from detectors.baseline import BaselineDetector, ScoreDrift
from detectors.cluster import ClusterDetector
from detectors.common import DetectorConfig
from detectors.engine import Engine
from detectors.features import prompt_features
from detectors.tenant import KeySummary, TenantDetector

__all__ = ["BaselineDetector", "ClusterDetector", "DetectorConfig", "Engine", "KeySummary", "ScoreDrift",
           "TenantDetector", "prompt_features"]
