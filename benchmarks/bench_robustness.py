"""How the bounded surfaces scale, as ratios: tracking people who keep coming and going, scoring a crowd, and the
editor's interpolate route under a large request.

    python benchmarks/bench_robustness.py

* tracking: one person per frame reappearing at 16 far-apart places (every frame a new identity); seconds and
  slots at 250, 1000 and 4000 frames. Linear time: each 4× more frames takes about 4× the time, and the slots stay
  the same (they grew with the frames, the time and memory with frames²);
* scoring: ``score_image`` of 125, 250 and 500 target people against one detected person; each 2× costs about 2×;
* the route: its handler served by aiohttp while a 20,000-frame clip is made; seconds until a too-large request
  (4 people × 100,000 frames) is refused and until ``/stable_pose/skeleton_spec`` answers, against the large
  clip's seconds. Needs ComfyUI (``harness/comfy_host.py`` boots it headless).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.pose_samples import keyframes, person_at
from stablepose_core.evaluate.score import score_image
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.tracking import track_people


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def tracking() -> None:
    places = [(200 + 800 * (index % 4), 200 + 800 * (index // 4)) for index in range(16)]
    previous = None
    for frames in (250, 1000, 4000):
        clip = [PoseKeypoints(person_at(*places[(frame * 5) % 16])[None], 3200, 3200) for frame in range(frames)]
        seconds, tracked = timed(lambda clip=clip: track_people(clip))
        ratio = "" if previous is None else f"  ({seconds / previous:.1f}x the time for 4x the frames)"
        print(f"tracking {frames:5d} frames: {seconds:6.2f} s, {tracked.num_people} slots{ratio}")
        previous = seconds


def scoring() -> None:
    detected = PoseKeypoints(person_at(100, 100)[None], 640, 480)
    previous = None
    for people in (125, 250, 500):
        target = PoseKeypoints(np.stack([person_at(100 + people % 7, 100)] * people), 640, 480)
        seconds = min(timed(lambda target=target: score_image(target, detected))[0] for _ in range(3))
        ratio = "" if previous is None else f"  ({seconds / previous:.1f}x the time for 2x the people)"
        print(f"scoring {people:3d} target people: {seconds * 1000:7.1f} ms{ratio}")
        previous = seconds


def route() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from harness.comfy_host import ComfyHost

    host = ComfyHost.boot(Path(tempfile.mkdtemp(prefix="bench_robustness_")))

    async def main() -> tuple[float, float, float]:
        app = web.Application()
        app.add_routes(host.server.routes)
        async with TestClient(TestServer(app)) as client:
            start = time.perf_counter()
            heavy = asyncio.ensure_future(
                client.post("/stable_pose/interpolate", data=json.dumps(keyframes(20_000, 1)))
            )
            await asyncio.sleep(0.3)
            asked = time.perf_counter()
            refused = await client.post("/stable_pose/interpolate", data=json.dumps(keyframes(100_000, 4)))
            refused_after = time.perf_counter() - asked
            assert refused.status == 400
            asked = time.perf_counter()
            await client.get("/stable_pose/skeleton_spec?width=64&height=64")
            spec_after = time.perf_counter() - asked
            await (await heavy).read()
            return refused_after, spec_after, time.perf_counter() - start

    refused_after, spec_after, heavy_seconds = asyncio.run(main())
    print(
        f"route: too-large request refused in {refused_after * 1000:.0f} ms and skeleton_spec answered in "
        f"{spec_after * 1000:.0f} ms while a 20,000-frame clip took {heavy_seconds:.1f} s"
    )


if __name__ == "__main__":
    tracking()
    scoring()
    route()
