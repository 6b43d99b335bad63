"""Prometheus metrics of a running Voltaro, one registry per server (tests run several).

The RPC endpoints report through their hooks (frames, CALLERRORs, handling and call
latency); connected chargers, the store's writer statistics and the counters other parts
keep (:meth:`VoltaroMetrics.watch_count`) are read when scraped.

Every label takes its values from a closed set (the OCPP actions, the CALLERROR codes of
OCPP-J, directions, outcomes): whatever a charger invents becomes ``unknown``, so no peer
can grow the registry, and a scrape stays small. A scrape is rendered on a worker thread
(:meth:`VoltaroMetrics.render`), one at a time, so it never holds up the chargers' loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from voltaro.admin.metrics_merge import merged_exposition
from voltaro.ocppj.dialect import OCPP16
from voltaro.ocppj.endpoint import FrameDirection, RpcHooks
from voltaro.ocppj.frames import Call, CallError, CallResult, Frame
from voltaro.store.metrics import Histogram as StoreHistogram
from voltaro.transport.server import TransportStats

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PARENT_PROCESS = "admin"  # the parent's process label in a scrape that covers workers
WORKER_ANSWER_SECONDS = 2.0  # how long a scrape waits for each worker's metrics


def _action_label(action: str | None) -> str:
    """The action as a label; whatever a charger invents is "unknown", so that a peer cannot
    grow the metrics without bound."""
    if action is None:
        return ""
    return action if action in OCPP16.actions else "unknown"


def _code_label(code: str) -> str:
    """A CALLERROR code as a label: one of OCPP-J's (2.0.1 spellings read as 1.6's), else
    "unknown"."""
    known = OCPP16.parse_error_code(code)
    return "unknown" if known is None else str(known)


class VoltaroMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[object, ...], Any] = {}
        self._scrapes = trio.CapacityLimiter(1)
        self._workers: Callable[[], Awaitable[Mapping[str, bytes | None]]] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.connected = Gauge(
            "voltaro_connected_chargers",
            "Charge points with an open OCPP connection",
            registry=self.registry,
        )
        self.frames = Counter(
            "voltaro_ocpp_frames",
            "OCPP frames by direction, action and kind (call, result, error)",
            ["direction", "action", "kind"],
            registry=self.registry,
        )
        self.call_errors = Counter(
            "voltaro_ocpp_callerrors",
            "CALLERROR frames by direction and error code",
            ["direction", "code"],
            registry=self.registry,
        )
        self.handled = Histogram(
            "voltaro_ocpp_inbound_handling_seconds",
            "Time from taking up a charger's CALL to its answer being sent",
            ["action", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.calls = Histogram(
            "voltaro_ocpp_outbound_call_seconds",
            "Time from sending a CALL to a charger until its answer (or the failure)",
            ["action", "outcome"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )

    def watch_connected(self, count: Callable[[], int]) -> None:
        self.connected.set_function(lambda: float(count()))

    def watch_writer(self, writer: Callable[[], object | None]) -> None:
        self.registry.register(_WriterCollector(writer))

    def watch_count(self, name: str, documentation: str, read: Callable[[], float | None]) -> None:
        """A counter kept elsewhere (a plain int attribute), read at each scrape; ``read``
        answering None (the part is not running) leaves it out of that scrape."""
        self.registry.register(_ReadValue(CounterMetricFamily, name, documentation, read))

    def watch_level(self, name: str, documentation: str, read: Callable[[], float | None]) -> None:
        """Like :meth:`watch_count`, for a value that goes up and down (a gauge)."""
        self.registry.register(_ReadValue(GaugeMetricFamily, name, documentation, read))

    def watch_transport(self, stats: Callable[[], TransportStats | None]) -> None:
        """The OCPP server's connection counters (:meth:`OcppServer.stats`), read when
        scraped; None (not listening yet) leaves them out."""
        self.registry.register(_TransportCollector(stats))

    def frame(self, direction: str, action: str | None, kind: str, code: str | None) -> None:
        self._child(self.frames, direction, _action_label(action), kind).inc()
        if code is not None:
            self._child(self.call_errors, direction, _code_label(code)).inc()

    def rpc_hooks(self) -> RpcHooks:
        """The hooks through which every session's endpoint reports to these metrics."""
        frame = self.frame

        def on_frame(direction: FrameDirection, sent: Frame, action: str | None, size: int) -> None:
            if isinstance(sent, CallError):
                frame(direction, action, "error", str(sent.error_code))
            elif isinstance(sent, Call):
                frame(direction, action, "call", None)
            elif isinstance(sent, CallResult):
                frame(direction, action, "result", None)

        return RpcHooks(
            on_frame=on_frame, on_handled=self.inbound_handled, on_call=self.outbound_call
        )

    def inbound_handled(self, action: str, outcome: str, seconds: float) -> None:
        self._child(self.handled, _action_label(action), outcome).observe(seconds)

    def outbound_call(self, action: str, outcome: str, seconds: float) -> None:
        self._child(self.calls, _action_label(action), outcome).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        # prometheus_client's labels() costs microseconds on every frame; look it up once.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def include_workers(self, ask: Callable[[], Awaitable[Mapping[str, bytes | None]]]) -> None:
        """Make a scrape cover the workers of ``voltaro serve --workers N`` too (this being
        the parent's): ``ask()`` gives each worker's text by its name (``w0``, ...), None for
        one that did not answer. Every sample is then labelled with its process (see
        :mod:`voltaro.admin.metrics_merge`), and ``voltaro_workers`` and
        ``voltaro_workers_answering`` say whether all are there."""
        self._workers = ask

    async def render(self) -> bytes:
        """:meth:`exposition` on a worker thread, one scrape at a time (callers queue); with
        :meth:`include_workers`, merged with the workers'."""
        own = await trio.to_thread.run_sync(self.exposition, limiter=self._scrapes)
        if self._workers is None:
            return own
        answers = await self._workers()
        texts = {PARENT_PROCESS: own}
        texts.update((name, text) for name, text in answers.items() if text is not None)
        extra = [
            GaugeMetricFamily("voltaro_workers", "Worker processes configured", len(answers)),
            GaugeMetricFamily(
                "voltaro_workers_answering",
                "Worker processes whose metrics are in this scrape (one that did not answer"
                f" within {WORKER_ANSWER_SECONDS:g} s, or is restarting, is missing)",
                len(texts) - 1,
            ),
        ]
        return await trio.to_thread.run_sync(merged_exposition, texts, extra, limiter=self._scrapes)


class _ReadValue(Collector):
    def __init__(
        self,
        family: type[CounterMetricFamily | GaugeMetricFamily],
        name: str,
        documentation: str,
        read: Callable[[], float | None],
    ) -> None:
        self._family = family
        self._name = name
        self._documentation = documentation
        self._read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        value = self._read()
        if value is not None:
            yield self._family(self._name, self._documentation, value=value)


class _WriterCollector(Collector):
    """The group-commit writer's histograms, read at scrape time."""

    def __init__(self, writer: Callable[[], object | None]) -> None:
        self._writer = writer

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        writer = self._writer()
        if writer is None:
            return
        for name, doc, attribute in (
            ("voltaro_db_commit_seconds", "Group commit latency", "commit_seconds"),
            ("voltaro_db_batch_size", "Writes per group commit", "batch_sizes"),
        ):
            histogram = getattr(writer, attribute, None)
            if isinstance(histogram, StoreHistogram):
                yield HistogramMetricFamily(
                    name,
                    doc,
                    buckets=[
                        ("+Inf" if bound == float("inf") else repr(float(bound)), count)
                        for bound, count in histogram.cumulative()
                    ],
                    sum_value=histogram.total,
                )


class _TransportCollector(Collector):
    def __init__(self, stats: Callable[[], TransportStats | None]) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._stats()
        except RuntimeError:  # its counters changed size while copied (another thread): next
            return
        if stats is None:
            return
        accept = stats.accept
        yield GaugeMetricFamily(
            "voltaro_ocpp_sockets_open",
            "Sockets the OCPP server holds: in their handshake, admitted or closing",
            value=accept.live_connections,
        )
        yield GaugeMetricFamily(
            "voltaro_ocpp_handshakes_in_progress",
            "Connections accepted and not yet admitted or refused",
            value=accept.pending_handshakes,
        )
        for name, documentation, value in (
            (
                "voltaro_ocpp_handshake_timeouts",
                "Connections not admitted within the handshake timeout",
                stats.handshake_timeouts,
            ),
            (
                "voltaro_ocpp_refused_per_address",
                "Connections closed at once: their address had the most handshakes allowed",
                accept.refused_per_address,
            ),
            (
                "voltaro_ocpp_paced_reads",
                "Reads of chargers' connections that waited for the inbound rate limit",
                stats.paced_reads,
            ),
        ):
            yield CounterMetricFamily(name, documentation, value=value)
        pauses = CounterMetricFamily(
            "voltaro_ocpp_accept_pauses",
            "Times accepting paused: too many handshakes, too few file descriptors left, or"
            " the process behind on its work",
            labels=["reason"],
        )
        pauses.add_metric(["handshakes"], accept.accept_waits_pending)
        pauses.add_metric(["files"], accept.accept_waits_files)
        pauses.add_metric(["busy"], accept.accept_waits_busy)
        yield pauses
        errors = CounterMetricFamily(
            "voltaro_ocpp_accept_errors",
            "Accepts that failed for want of descriptors or memory, by errno",
            labels=["errno"],
        )
        for errno_name, count in sorted(accept.accept_errors.items()):
            errors.add_metric([errno_name], count)
        yield errors
