"""Prometheus metrics of the media process, read from the lives at scrape time."""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from liveserver.media.live import MediaRooms

GAUGES = {
    "fps": "Ingest frames per second",
    "bitrate_bps": "Ingest bitrate (bits/s, whole transport)",
    "width": "Ingest width",
    "height": "Ingest height",
    "keyframe_interval_s": "Seconds between the last two ingest keyframes",
    "dropped_frames": "Ingest frames dropped because the encoder was behind",
    "packets_lost": "Ingest RTP packets lost",
    "decode_dropped": "Ingest frames dropped because the decoder was behind (then up to a keyframe)",
    "frames": "Ingest frames received",
    "encode_ms_per_frame": "Mean encode time per frame (ms)",
}


class MediaCollector:
    def __init__(self, rooms: MediaRooms) -> None:
        self.rooms = rooms

    def collect(self) -> Iterator[Metric]:
        lives = GaugeMetricFamily("liveserver_media_lives", "Lives running on this media process")
        lives.add_metric([], len(self.rooms.lives))
        yield lives
        viewers = GaugeMetricFamily("liveserver_media_whep_viewers", "WHEP viewers per room", labels=["room"])
        guests = GaugeMetricFamily("liveserver_media_linkmic_guests", "Link-mic guests composed into the program per room",
                                   labels=["room"])
        families = {k: GaugeMetricFamily(f"liveserver_media_ingest_{k}", doc, labels=["room", "source"]) for k, doc in GAUGES.items()}
        for live in list(self.rooms.lives.values()):
            viewers.add_metric([live.room], len(live.viewers))
            guests.add_metric([live.room], len(live.guests))
            snap = live.health.snapshot()
            for key, family in families.items():
                family.add_metric([live.room, live.kind], float(snap[key]))
        yield viewers
        yield guests
        yield from families.values()


def registry(rooms: MediaRooms) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(MediaCollector(rooms))  # type: ignore[arg-type]
    return reg


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
