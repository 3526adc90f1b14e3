"""What each AWS resource sees at a given job rate: requests per second per resource (and per S3 prefix, against
S3's documented 3,500 writes and 5,500 reads a second per partitioned prefix), the listing pages that `status`,
`jobs list` and the API's waiter need, and dollars per million jobs at list prices.

The model is the worker's common path at the default settings (a short job that ends before its first
heartbeat, measured by `benchmarks/pipeline.py`): a receive per 10 messages at load and a batched delete per 10,
the claim and the outcome record (2 DynamoDB writes of 1 and 2 write units, or 2 S3 PUTs under `jobs/`), the
audio PUT, one SNS publish, index segments (a worker writes one every `F5_WORKER_INDEX_FLUSH_S` or 100 entries)
and each worker's hourly counts (a GET and a conditional PUT a minute). docs/scaling.md's table is
`render_table()` (drift-tested); `scale simulate` prints the rows at the simulation's peak rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

S3_PUT_PER_PREFIX = 3500  # per second, per partitioned prefix (S3 performance guidelines)
S3_GET_PER_PREFIX = 5500
DYNAMODB_ON_DEMAND_START_WRU = 4000  # a new on-demand table serves this many write units a second at once
SNS_PUBLISH_PER_S = 30_000  # Publish, us-east-1 default quota (other regions: 9,000 or 1,500)
PRICES = {  # USD per million, us-east-1 list prices, 2026-12-02
    "s3_put": 5.00,
    "s3_get": 0.40,
    "sqs": 0.40,
    "sns": 0.50,
    "dynamodb_wru": 0.625,
    "dynamodb_rru": 0.125,
}
WRITE_UNITS_PER_JOB = 3  # claim (1) and the outcome with its event (2), measured by benchmarks/pipeline.py
INDEX_ENTRIES_PER_JOB = 2  # the claim's and the outcome's
SEGMENT_MAX_ENTRIES = 100


@dataclass(frozen=True)
class Load:
    """Requests per second per resource at `jobs_per_s` on `workers` workers."""

    jobs_per_s: float
    workers: int
    records: str  # "dynamodb" or "s3"
    flush_s: float = 5.0

    @property
    def segments_per_s(self) -> float:
        per_worker_entries = INDEX_ENTRIES_PER_JOB * self.jobs_per_s / self.workers
        return self.workers * max(1 / self.flush_s, per_worker_entries / SEGMENT_MAX_ENTRIES)

    def rows(self) -> list[tuple[str, float, str]]:
        """(resource, requests a second, against what limit)."""
        r = self.jobs_per_s
        per_prefix = f"{S3_PUT_PER_PREFIX:,} per prefix"
        records = (
            [("DynamoDB jobs table, write units", WRITE_UNITS_PER_JOB * r, f"{DYNAMODB_ON_DEMAND_START_WRU:,} at once")]
            if self.records == "dynamodb"
            else [("S3 `jobs/` PUT", 2 * r, per_prefix)]
        )
        return [
            ("SQS ReceiveMessage + DeleteMessageBatch", 0.2 * r + self.workers / 20, "no limit: standard queue"),
            *records,
            ("S3 `outputs/` PUT (audio)", r, per_prefix),
            (
                "S3 `jobs-index/{yyyy-mm-dd}/{hh}/` PUT (segments)",
                self.segments_per_s,
                per_prefix,
            ),
            (
                "S3 `workers/{yyyy-mm-dd}/{hh}/` GET + PUT (counts)",
                2 * self.workers / 60,
                per_prefix,
            ),
            ("SNS Publish", r, f"{SNS_PUBLISH_PER_S:,} (quota)"),
        ]

    def status_requests(self) -> int:
        """`f5-worker status`: queue, redrive policy, DLQ, CloudWatch, 2 hours x 2 shards: not the volume's."""
        return 8

    def jobs_list_pages(self, hours: float = 1.0) -> int:
        """ListObjectsV2 pages of `jobs list --since {hours}h`."""
        return max(1, math.ceil(self.segments_per_s * 3600 * hours / 1000))

    def usd_per_million_jobs(self) -> float:
        p = PRICES
        per_job = (
            p["s3_put"]  # audio
            + p["sns"]
            + 0.2 * p["sqs"]
            + (WRITE_UNITS_PER_JOB * p["dynamodb_wru"] if self.records == "dynamodb" else 2 * p["s3_put"])
            + self.segments_per_s / self.jobs_per_s * p["s3_put"]
            + 2 * self.workers / 60 / self.jobs_per_s * (p["s3_put"] + p["s3_get"]) / 2
        )
        return per_job


def workers_for(jobs_per_s: float) -> int:
    """The fleet the table assumes: ten short jobs a second per worker (an H100 at RTF 0.01 on 1 s replies)."""
    return max(1, math.ceil(jobs_per_s / 10))


def render_table(rates: tuple[float, ...] = (10, 100, 1000)) -> str:
    """docs/scaling.md's table: requests a second per resource at each rate, `status` and `jobs list` costs,
    dollars per million jobs with records in DynamoDB and in S3."""
    loads = [Load(r, workers_for(r), "dynamodb") for r in rates]
    fleets = [f"{r:,g} jobs a second, {workers_for(r)} worker{'s' if workers_for(r) > 1 else ''}" for r in rates]
    header = "| resource (limit) | " + " | ".join(fleets) + " |"
    lines = [header, "|---|" + "---|" * len(rates)]
    s3_rows = {name: value for name, value, _ in Load(rates[0], 1, "s3").rows()}
    for i, (name, _, limit) in enumerate(loads[0].rows()):
        values = " | ".join(f"{load.rows()[i][1]:,.1f}/s" for load in loads)
        lines.append(f"| {name} ({limit}) | {values} |")
        if name.startswith("DynamoDB") and "S3 `jobs/` PUT" in s3_rows:
            s3 = " | ".join(f"{2 * load.jobs_per_s:,.1f}/s" for load in loads)
            lines.append(f"| or, records in S3: S3 `jobs/` PUT ({S3_PUT_PER_PREFIX:,} per prefix) | {s3} |")
    lines.append("| `f5-worker status` requests | " + " | ".join(str(x.status_requests()) for x in loads) + " |")
    pages = " | ".join(str(x.jobs_list_pages()) for x in loads)
    lines.append(f"| `jobs list --since 1h` listing pages (+ a GET per segment read) | {pages} |")
    lines.append("| API waiter listings | " + " | ".join("0" for _ in loads) + " |")
    usd = " | ".join(f"${x.usd_per_million_jobs():.2f}" for x in loads)
    lines.append(f"| $ per million jobs, records in DynamoDB | {usd} |")
    s3_usd = " | ".join(f"${Load(x.jobs_per_s, x.workers, 's3').usd_per_million_jobs():.2f}" for x in loads)
    lines.append(f"| $ per million jobs, records in S3 | {s3_usd} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_table(), end="")
