"""Parse the app's /metrics with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, list]:
    """family name -> list of samples (name, labels, value)."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(text: str, sample_name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
