"""The README's fleet plot (docs/fleet-simulation.png): `scale simulate` on a burst of 500 jobs at the start plus
0.2 jobs/s for two hours, RTX 4090 planning defaults (RTF 0.08, $0.69/h), 90 s pod start-up, 0 to 6 pods, the
other policy settings at their defaults (F5_WORKER_FLEET_* apply, as in the command). Simulated time: a second.

.venv/bin/python benchmarks/fleet_plot.py [--out docs/fleet-simulation.png]

The same as: f5-worker scale simulate --arrivals burst:500@0+constant:0.2 --duration-s 7200 --gpu "RTX 4090"
--startup-s 90 --min-pods 0 --max-pods 6 --plot docs/fleet-simulation.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.fleet.scenario import Scenario, gpu_type, parse_arrivals
from consumer.fleet.settings import load_fleet_settings, policy_of
from consumer.fleet.simulate import plot, simulate
from consumer.fleet.simulate_cli import table

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fleet-simulation.png")
    args = parser.parse_args()
    settings = load_fleet_settings(fleet_min_pods=0, fleet_max_pods=6)
    scenario = Scenario(
        arrivals=parse_arrivals("burst:500@0+constant:0.2"),
        duration_s=2 * 3600,
        gpu=gpu_type("RTX 4090"),
        startup_s=90,
        interval_s=settings.fleet_interval_s,
        seed=0,
    )
    result = simulate(scenario, policy_of(settings))
    plot(result, args.out)
    print(table(result))
    print(f"plot       {args.out}")


if __name__ == "__main__":
    main()
