"""What `scale simulate` runs: GPU types, arrivals (constant, bursts, a day curve, a trace) and the scenario that
draws its jobs from a seed. Every bad value is a ConfigurationError naming its option."""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from consumer.core.errors import ConfigurationError

ARRIVALS_FORMS = "constant:RATE, burst:COUNT@AT[,COUNT@AT...], daily:PEAK[,PERIOD_S] or csv:PATH, joined with +"
RATE_WINDOW = 4  # intervals of saturated work the measured rate averages over
MAX_JOBS = 1_000_000  # a bigger scenario is a typo (a rate per hour given per second)
MAX_DECISIONS = 1_000_000  # (duration + tail) / interval: a year of 15 s decisions is a typo too


def _refuse(message: str, option: str, fix: str) -> ConfigurationError:
    return ConfigurationError(f"{message} ({option})", fix)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _not_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


# --- GPU types ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuType:
    name: str
    rtf: float  # seconds of compute per second of audio
    price_per_hour: float  # dollars per pod-hour


# Planning defaults to override with --rtf and --price: rough figures, not measurements of this worker. Measure
# your RTF with benchmarks/gpu_ready.py and take prices from your provider.
GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        GpuType("RTX 4090", 0.08, 0.69),
        GpuType("A100 80GB", 0.05, 1.64),
        GpuType("H100", 0.035, 2.69),
        GpuType("CPU", 26.0, 0.0),
    )
}


def gpu_type(name: str, rtf: float | None = None, price_per_hour: float | None = None) -> GpuType:
    """A known GPU type (case-insensitive), its RTF and price replaced where given."""
    known = {key.lower(): gpu for key, gpu in GPU_TYPES.items()}
    base = known.get(name.strip().lower())
    if base is None:
        raise _refuse(
            f"unknown GPU type {name!r}; known: {', '.join(GPU_TYPES)}",
            "--gpu",
            "pass one of the known types, and --rtf and --price for your own GPU's numbers",
        )
    gpu = GpuType(
        base.name, base.rtf if rtf is None else rtf, base.price_per_hour if price_per_hour is None else price_per_hour
    )
    if not _positive(gpu.rtf):
        raise _refuse(f"RTF {gpu.rtf}: must be > 0", "--rtf", "pass the seconds of compute per second of audio")
    if not _not_negative(gpu.price_per_hour):
        raise _refuse(f"price {gpu.price_per_hour}: must be >= 0", "--price", "pass dollars per pod-hour")
    return gpu


# --- arrivals -------------------------------------------------------------------------------------------------------
def _arrivals_error(message: str) -> ConfigurationError:
    return _refuse(message, "--arrivals", f"use {ARRIVALS_FORMS}")


@dataclass(frozen=True)
class Constant:
    """A Poisson process of `rate_per_s` jobs per second."""

    rate_per_s: float
    finite = False

    def __post_init__(self) -> None:
        if not _positive(self.rate_per_s):
            raise _arrivals_error(f"constant rate {self.rate_per_s}: must be > 0 jobs per second")

    def times(self, duration_s: float, rng: random.Random) -> list[float]:
        out: list[float] = []
        t = rng.expovariate(self.rate_per_s)
        while t < duration_s:
            if len(out) == MAX_JOBS:
                raise _arrivals_error(
                    f"more than {MAX_JOBS} jobs in {duration_s:g} s at {self.rate_per_s:g} per second"
                )
            out.append(t)
            t += rng.expovariate(self.rate_per_s)
        return out

    def describe(self) -> str:
        return f"constant:{self.rate_per_s:g}"


@dataclass(frozen=True)
class Bursts:
    """`count` jobs at once at each `at_s`."""

    bursts: tuple[tuple[float, int], ...]
    finite = True

    def __post_init__(self) -> None:
        if not self.bursts or any(not _not_negative(at) or count < 1 for at, count in self.bursts):
            raise _arrivals_error(f"bursts {list(self.bursts)}: need at least one, times >= 0, counts >= 1")
        if sum(count for _, count in self.bursts) > MAX_JOBS:
            raise _arrivals_error(f"more than {MAX_JOBS} jobs in bursts")

    def times(self, duration_s: float, rng: random.Random) -> list[float]:
        return [float(at) for at, count in self.bursts if at < duration_s for _ in range(count)]

    @property
    def last_s(self) -> float:
        return max(at for at, _ in self.bursts)

    def describe(self) -> str:
        return "burst:" + ",".join(f"{count}@{at:g}" for at, count in self.bursts)


@dataclass(frozen=True)
class Daily:
    """A day curve: nothing at night, a half-sine by day (from a quarter to three quarters of the period), peaking
    at `peak_per_s` mid-period. The simulation starts at midnight."""

    peak_per_s: float
    period_s: float = 86400.0
    finite = False

    def __post_init__(self) -> None:
        if not (_positive(self.peak_per_s) and _positive(self.period_s)):
            raise _arrivals_error(f"daily peak {self.peak_per_s}, period {self.period_s}: both must be > 0")

    def rate_at(self, t: float) -> float:
        phase = (t % self.period_s) / self.period_s
        return self.peak_per_s * math.sin(2 * math.pi * (phase - 0.25)) if 0.25 <= phase < 0.75 else 0.0

    def times(self, duration_s: float, rng: random.Random) -> list[float]:
        """A Poisson process at the peak rate, thinned to the day curve."""
        candidates = Constant(self.peak_per_s).times(duration_s, rng)
        return [t for t in candidates if rng.random() * self.peak_per_s < self.rate_at(t)]

    def describe(self) -> str:
        return f"daily:{self.peak_per_s:g}" + ("" if self.period_s == 86400 else f",{self.period_s:g}")


@dataclass(frozen=True)
class Trace:
    """Recorded arrival times, seconds from the first one."""

    at_s: tuple[float, ...]
    name: str = "trace"
    finite = True

    def __post_init__(self) -> None:
        if not self.at_s:
            raise _arrivals_error(f"{self.name}: no arrival times")

    def times(self, duration_s: float, rng: random.Random) -> list[float]:
        return [t for t in self.at_s if t < duration_s]

    @property
    def last_s(self) -> float:
        return max(self.at_s)

    def describe(self) -> str:
        return f"csv:{self.name}"


@dataclass(frozen=True)
class Mixed:
    """Several arrival patterns at once."""

    parts: tuple[Arrivals, ...]

    @property
    def finite(self) -> bool:
        return all(part.finite for part in self.parts)

    def times(self, duration_s: float, rng: random.Random) -> list[float]:
        return [t for part in self.parts for t in part.times(duration_s, rng)]

    def describe(self) -> str:
        return "+".join(part.describe() for part in self.parts)


Arrivals = Constant | Bursts | Daily | Trace | Mixed


def constant(rate_per_s: float) -> Constant:
    return Constant(rate_per_s)


def bursts(items: Iterable[tuple[float, int]]) -> Bursts:
    """Bursts from (at_s, count) pairs."""
    return Bursts(tuple((float(at), int(count)) for at, count in items))


def daily(peak_per_s: float, period_s: float = 86400.0) -> Daily:
    return Daily(peak_per_s, period_s)


def mixed(*parts: Arrivals) -> Mixed:
    return Mixed(tuple(parts))


def from_csv(path: Path) -> Trace:
    """Arrival times from a file: one a line (first column), seconds or ISO 8601 times (naive ones are UTC);
    a header line and `#` comments are skipped. Times count from the earliest."""
    try:
        with path.open(newline="") as file:
            rows = [row[0].strip() for row in csv.reader(file) if row and row[0].strip()]
    except OSError as exc:
        raise _arrivals_error(f"cannot read {path}: {exc.strerror or exc}") from None
    times: list[float] = []
    for number, text in enumerate(rows, start=1):
        if text.startswith("#"):
            continue
        value = _parse_time(text)
        if value is None and number == 1:
            continue  # a header
        if value is None:
            raise _arrivals_error(f"{path} line {number}: {text[:40]!r} is neither seconds nor an ISO time")
        times.append(value)
    first = min(times, default=0.0)
    return Trace(tuple(sorted(t - first for t in times)), name=str(path))


def _parse_time(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_arrivals(spec: str) -> Arrivals:
    """`constant:0.5`, `burst:200@0,100@600`, `daily:2.0[,86400]`, `csv:path`, or several joined with `+`."""
    parts = [_parse_one(part.strip()) for part in spec.split("+")]
    return parts[0] if len(parts) == 1 else Mixed(tuple(parts))


def _parse_one(spec: str) -> Arrivals:
    kind, _, value = spec.partition(":")
    kind = kind.strip().lower()
    try:
        if kind == "constant":
            return Constant(float(value))
        if kind in ("burst", "bursts"):
            pairs = [item.split("@") for item in value.split(",")]
            return bursts((float(at), int(count)) for count, at in pairs)
        if kind == "daily":
            peak, *period = (float(item) for item in value.split(","))
            if len(period) <= 1:
                return Daily(peak, *period)
        if kind == "csv" and value:
            return from_csv(Path(value))
    except ValueError:  # float(), int() or the unpacking of COUNT@AT
        pass
    raise _arrivals_error(f"cannot read {spec!r}")


# --- the scenario ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioLengths:
    """Seconds of audio per job: lognormal with this mean; `spread` is the sigma of its logarithm."""

    mean_s: float = 20.0
    spread: float = 0.6

    def __post_init__(self) -> None:
        if not _positive(self.mean_s):
            raise _refuse(f"mean audio {self.mean_s} s: must be > 0", "--audio-s", "pass seconds of audio per job")
        if not _not_negative(self.spread):
            raise _refuse(f"audio spread {self.spread}: must be >= 0", "--audio-spread", "pass 0 for equal jobs")

    def draw(self, rng: random.Random) -> float:
        mu = math.log(self.mean_s) - self.spread**2 / 2  # so that the mean is mean_s
        return rng.lognormvariate(mu, self.spread)


@dataclass(frozen=True)
class Scenario:
    arrivals: Arrivals
    duration_s: float = 3600.0  # arrivals stop here; the simulation runs on until the fleet is back at min
    gpu: GpuType = GPU_TYPES["RTX 4090"]
    startup_s: float = 90.0  # pod created -> first poll (docs/deploying.md §7); a planning default
    audio: AudioLengths = field(default_factory=AudioLengths)
    overhead_s: float = 1.0  # per job, besides audio_s x RTF
    interval_s: float = 15.0  # between two decisions (F5_WORKER_FLEET_INTERVAL_S)
    seed: int = 0
    tail_s: float = 86400.0  # after duration_s, at most this long for the drain and the scale-down

    def __post_init__(self) -> None:
        checks = [
            (_positive(self.duration_s), f"duration {self.duration_s} s: must be > 0", "--duration-s"),
            (_not_negative(self.startup_s), f"start-up {self.startup_s} s: must be >= 0", "--startup-s"),
            (_not_negative(self.overhead_s), f"overhead {self.overhead_s} s: must be >= 0", "--overhead-s"),
            (_positive(self.interval_s), f"interval {self.interval_s} s: must be > 0", "--interval-s"),
            (_not_negative(self.tail_s), f"tail {self.tail_s} s: must be >= 0", "tail_s"),
        ]
        for ok, message, option in checks:
            if not ok:
                raise _refuse(message, option, "pass a number of seconds in range")
        if (self.duration_s + self.tail_s) / self.interval_s > MAX_DECISIONS:
            raise _refuse(
                f"{self.duration_s:g} s at one decision every {self.interval_s:g} s: over {MAX_DECISIONS} decisions",
                "--duration-s",
                "simulate a shorter span (a day or a week is representative)",
            )

    def describe(self) -> str:
        return f"{self.arrivals.describe()} on {self.gpu.name}"

    def service_s(self, audio_s: float) -> float:
        return audio_s * self.gpu.rtf + self.overhead_s

    def jobs(self) -> list[tuple[float, float]]:
        """(arrival time, audio seconds) of every job, in arrival order: the same for a seed, whatever the policy."""
        times = sorted(self.arrivals.times(self.duration_s, random.Random(f"arrivals-{self.seed}")))
        lengths = random.Random(f"audio-{self.seed}")
        return [(t, self.audio.draw(lengths)) for t in times]


def default_duration_s(arrivals: Arrivals) -> float:
    """An hour, or past the last burst or traced arrival when that is later."""
    parts = arrivals.parts if isinstance(arrivals, Mixed) else (arrivals,)
    last = max((part.last_s for part in parts if isinstance(part, Bursts | Trace)), default=0.0)
    return max(3600.0 if not arrivals.finite else 0.0, last + 1.0)
