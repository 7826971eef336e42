"""Live video: WHIP/RTMP ingest, one encode per rendition, WHEP + HLS out, recordings.

Runs in its own process (`liveserver media`); web nodes answer 307 to it. See docs/media.md.
"""
