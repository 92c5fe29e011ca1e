"""Benchmark the photo pipeline (decode, upright, cap, re-encode) on phone-sized photos; prints
figures. The photos are noise, the worst case for every codec.

    .venv/bin/python -m bench.bench_photos [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

from PIL import Image

from shared.chassis.imaging import Limits, clean

SIZES = {"12 MP phone photo": (4032, 3024), "48 MP phone photo": (8064, 6048),
         "screenshot": (1170, 2532)}


def noise(width: int, height: int) -> Image.Image:
    """Coarse random colour, smooth enough that JPEG sizes look like a real photo's."""
    small = Image.frombytes("RGB", (width // 4, height // 4), os.urandom(width * height * 3 // 16))
    return small.resize((width, height), Image.Resampling.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    limits = Limits(max_bytes=1 << 30)
    for label, size in SIZES.items():
        picture = noise(*size)
        for kind, params in (("jpg", {"quality": 92}), ("png", {}), ("webp", {"quality": 90})):
            if kind == "png" and label != "screenshot":
                continue
            out = io.BytesIO()
            picture.save(out, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind], **params)
            data = out.getvalue()
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                kept = clean(data, limits)
                times.append(time.perf_counter() - started)
            print(f"{label:18} {kind:4} {len(data) / 1e6:6.1f} MB {size[0]}x{size[1]} -> "
                  f"{kept.width}x{kept.height} {len(kept.data) / 1e6:5.2f} MB: "
                  f"median {statistics.median(times) * 1000:6.0f} ms, "
                  f"max {max(times) * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
