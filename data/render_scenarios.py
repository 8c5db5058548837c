"""Recipe: simulate every scenario and render one frame of each to docs/scenarios/SCENARIO.png (the README pictures).

    .venv/bin/python data/render_scenarios.py [--res 64] [--frames 24] [--device auto]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuralvox.render import render_grid_png
from neuralvox.sim import SCENARIOS, generate

ROOT = Path(__file__).resolve().parents[1]
SHOWN_GRID = {"plume": "density", "plumes": "density", "liquid": "surface"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    for scenario in SCENARIOS:
        for number, grids in generate(scenario, args.res, args.frames, device=args.device):
            if number == args.frames:
                grid = next(g for g in grids if g.name == SHOWN_GRID[scenario])
                out = render_grid_png(ROOT / "docs" / "scenarios" / f"{scenario}.png", grid, axis="z", force=True,
                                      title=f"{scenario}: {grid.name}, frame {number}, res {args.res}, "
                                            f"{grid.voxel_count:,} voxels")
                print(f"wrote {out}")


if __name__ == "__main__":
    main()
