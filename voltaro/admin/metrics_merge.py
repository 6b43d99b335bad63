"""One ``/metrics`` text out of several processes' (``voltaro serve --workers N``: the parent's
and each worker's), each sample labelled with its process (``process="admin"``, ``"w0"``,
...), so that one scrape of the parent shows the whole node and ``sum()`` adds it up.

The processes' texts are parsed by ``prometheus_client``'s parser and written again by its
exposition; a family that several processes have is written once, with the samples of all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PROCESS_LABEL = "process"


def merged_exposition(texts: Mapping[str, bytes], extra: Sequence[Metric] = ()) -> bytes:
    """``texts``: each process's exposition by its name; ``extra``: families of the whole
    (written as they are, first)."""
    families: dict[str, Metric] = {}
    for process, text in texts.items():
        for family in text_string_to_metric_families(text.decode()):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples += [_labelled(sample, process) for sample in family.samples]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*extra, *families.values()]))
    return generate_latest(registry)


def _labelled(sample: Sample, process: str) -> Sample:
    labels = {**sample.labels, PROCESS_LABEL: process}
    return Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
