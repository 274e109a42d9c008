"""Sizes of the demo outputs written by a zlib level-6 PNG writer (PIL,
compress_level=6, adaptive filtering), the bar `movq`'s own deflate must
meet. Writes Tests/MoVQTests/Fixtures/png_reference_sizes.json from PNGs that
`movq sample -o samples.png` and `movq reconstruct -o reconstruction.png` wrote.

Run: $(Tools/setup_venv.sh) Tools/png_reference_sizes.py samples.png reconstruction.png
"""
import io
import json
import os
import sys

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "MoVQTests", "Fixtures", "png_reference_sizes.json")

sizes = {}
for path in sys.argv[1:]:
    im = Image.open(path)
    im.load()
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    sizes[os.path.basename(path)] = {"zlib6_bytes": len(buf.getvalue()), "width": im.width, "height": im.height}
with open(OUT, "w") as f:
    json.dump(sizes, f, indent=1, sort_keys=True)
print(json.dumps(sizes))
