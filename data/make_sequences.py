"""Recipe: simulate the project's .vdb test sequences into data/generated/ (git-ignored).

    PYTHONPATH=. python data/make_sequences.py demo              # plume, res 64, 24 frames (about a minute on 2 cores)
    PYTHONPATH=. python data/make_sequences.py small             # every scenario, res 32, 8 frames (seconds)
    PYTHONPATH=. python data/make_sequences.py benchmark         # every scenario, res 128, 48 frames (CPU: long)
    PYTHONPATH=. python data/make_sequences.py gpu --device cuda # every scenario, res 256, 96 frames

Each sequence goes to data/generated/SCENARIO_RES/SCENARIO.0001.vdb ...; existing frames make it stop unless --force.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuralvox.sim import SCENARIOS, simulate

PRESETS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "demo": (("plume",), 64, 24),
    "small": (SCENARIOS, 32, 8),
    "benchmark": (SCENARIOS, 128, 48),
    "gpu": (SCENARIOS, 256, 96),
}
OUT = Path(__file__).resolve().parent / "generated"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite existing frames")
    args = parser.parse_args()
    scenarios, res, frames = PRESETS[args.preset]
    for scenario in scenarios:
        folder = OUT / f"{scenario}_{res}"
        paths = simulate(scenario, folder, res, frames, seed=args.seed, device=args.device, force=args.force)
        print(f"{scenario}: {len(paths)} frames in {folder}")


if __name__ == "__main__":
    main()
