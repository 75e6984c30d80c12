"""The store's growth history, kept in memory and in a state file that survives restarts.

One JSON file per storage id in the state directory, replaced atomically
(write a temporary file in the same directory, fsync, rename). A corrupt,
unreadable or unwritable state file is logged as a warning and the history
carries on in memory: it never stops the collector. Samples dated after
``now`` (the clock went backwards) are dropped, so the series stays ordered.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

from .forecast import WINDOW, Sample

log = logging.getLogger(__name__)
MIN_GAP = 60.0  # at most one sample a minute is kept
KEEP = 2 * WINDOW  # samples older than this are dropped
MAX_SAMPLES = 4000  # beyond this, every other old sample is dropped
VERSION = 1


class History:
    def __init__(self, state_dir: str | Path | None, storage_id: str):
        self.samples: list[Sample] = []
        self.path = None
        self.warning = ""  # the last problem with the state file, for the reading
        if state_dir:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", storage_id).strip("_")[:120] or "storage"
            self.path = Path(state_dir) / f"storage-history-{safe}.json"
            self.samples = self._load()

    def _load(self) -> list[Sample]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("version") != VERSION:
                raise ValueError(f"version {raw.get('version')!r}, expected {VERSION}")
            samples = [Sample(float(t), int(d), int(a)) for t, d, a in raw["samples"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            log.warning("ignoring unreadable storage history", extra={"path": str(self.path), "err": str(err)})
            self.warning = f"ignored unreadable {self.path}: {err}"
            return []
        return sorted(samples, key=lambda s: s.time)

    def add(self, sample: Sample) -> None:
        """Record ``sample`` (its time is now), dropping what the clock has made future."""
        self.samples = [s for s in self.samples if s.time <= sample.time and sample.time - s.time <= KEEP]
        if self.samples and sample.time - self.samples[-1].time < MIN_GAP:
            self.samples[-1] = sample
        else:
            self.samples.append(sample)
        if len(self.samples) > MAX_SAMPLES:
            half = len(self.samples) // 2
            self.samples = self.samples[:half:2] + self.samples[half:]
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"version": VERSION, "samples": [[s.time, s.data_bytes, s.avail_bytes]
                                                           for s in self.samples]})
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".history-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self.warning = ""
        except OSError as err:
            if tmp:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass  # the directory itself may be gone or read-only
            if not self.warning:
                log.warning("cannot save storage history", extra={"path": str(self.path), "err": str(err)})
            self.warning = f"cannot save {self.path}: {err.strerror or err}"
