"""Docs that can drift from the code: the S3 keys they name must be keys the code produces, and they name nothing
outside the repository."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from consumer.api.gateway import Gateway
from consumer.audio.encoding import EXTENSIONS
from consumer.core.settings import FleetSettings, Settings
from consumer.storage.audio import output_location
from consumer.storage.job_index import JobIndex
from consumer.storage.record_backends import S3Records
from consumer.storage.stream_blocks import block_key, sequence_prefix
from consumer.storage.voice_layout import VoiceLayout
from consumer.storage.workers import WorkerRegistry
from contracts.requests import AudioFormat, OutputSpec, SynthesisRequest
from tests.paths import REPO

DOCS = sorted(
    [*(REPO / "docs").glob("*.md"), REPO / "README.md", REPO / "infra" / "README.md", REPO / "localstack" / "README.md"]
)
_PLACEHOLDER = re.compile(r"\{[a-z_-]+\}")


def code_key_patterns() -> list[str]:
    """Every S3 key shape the code writes, from its own key functions, with `{name}` placeholders."""
    defaults = Settings()
    jobs = S3Records(s3=None, bucket="b", prefix=defaults.jobs_prefix).key("{job_id}")
    outputs = [
        output_location(
            SynthesisRequest.model_construct(job_id="{job_id}", output=OutputSpec(format=fmt)),
            "b",
            defaults.output_prefix,
            (),
        ).key
        for fmt in AudioFormat
    ]
    voices = VoiceLayout(defaults.voices_prefix)
    segment = JobIndex(s3=None, bucket="b", prefix=defaults.jobs_index_prefix).segment_key(
        datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC), "WRITER", 7, 9
    )
    index = (
        segment.replace("2000-01-02", "{yyyy-mm-dd}")
        .replace("/03/", "/{hh}/")
        .replace("0405-WRITER-000007-9", "{mmss}-{writer}-{seq}-{n}")
    )
    shard = WorkerRegistry(s3=None, bucket="b", prefix=defaults.workers_prefix).shard_key("2000-01-02/03", 1)
    worker = shard.replace("2000-01-02", "{yyyy-mm-dd}").replace("/03/", "/{hh}/").replace("/1.json", "/{shard}.json")
    marker = Gateway.marker_key(defaults.api_jobs_prefix, "{job_id}")
    lease = FleetSettings().fleet_lease_key  # `scale`'s one-controller lease
    block = block_key(sequence_prefix("{job_id}", 7, 8, "MESSAGE"), 9)
    stream_block = block.replace("/7/", "/{generation}/").replace("8-MESSAGE", "{attempt}-{message_id}")
    return [
        jobs,
        *outputs,
        voices.reference_key("{voice_id}"),
        voices.manifest_key("{voice_id}"),
        index,
        worker,
        marker,
        lease,
        stream_block.replace("/00009", "/{seq}"),
    ]


def _regex(pattern: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(pattern)
    return re.compile(r"[^/]+".join(re.escape(p) for p in parts))


def _doc_keys(text: str) -> set[str]:
    return set(
        re.findall(r"(?<![\w/{.-])((?:jobs|jobs-index|outputs|voices|workers|api-jobs|fleet)/[^\s`'\")|,]*)", text)
    )


def _produced(doc_key: str, patterns: list[str]) -> bool:
    if doc_key.endswith("/") or doc_key.endswith("/*"):  # a prefix ("everything under outputs/")
        return any(p.startswith(doc_key.rstrip("*")) for p in patterns)
    sample = doc_key.replace("{ext}", EXTENSIONS[AudioFormat.WAV])
    sample = _PLACEHOLDER.sub("x1", sample)
    return any(_regex(p).fullmatch(sample) for p in patterns)


def test_code_key_patterns_are_the_documented_layout():
    assert code_key_patterns()[0] == "jobs/{job_id}.json"
    assert "outputs/{job_id}.mp3" in code_key_patterns()
    assert code_key_patterns()[-6] == "voices/{voice_id}/manifest.json"
    assert code_key_patterns()[-5:] == [
        "jobs-index/{yyyy-mm-dd}/{hh}/{mmss}-{writer}-{seq}-{n}.json",
        "workers/{yyyy-mm-dd}/{hh}/{shard}.json",
        "api-jobs/{job_id}.json",
        "fleet/controller.json",
        "streams/{job_id}/{generation}/{attempt}-{message_id}/{seq}",
    ]


def test_docs_name_only_s3_keys_the_code_produces():
    patterns = code_key_patterns()
    seen = 0
    for doc in DOCS:
        for key in _doc_keys(doc.read_text(encoding="utf-8")):
            assert _produced(key, patterns), f"{doc.relative_to(REPO)} names S3 key {key!r}; the code writes {patterns}"
            seen += 1
    assert seen >= 10


def test_the_key_check_catches_the_old_two_file_layout():
    patterns = code_key_patterns()
    assert _doc_keys("state in `jobs/{job_id}/claim.json` and jobs/{job_id}/result.json") == {
        "jobs/{job_id}/claim.json",
        "jobs/{job_id}/result.json",
    }
    assert not _produced("jobs/{job_id}/claim.json", patterns)
    assert not _produced("jobs/{job_id}/", patterns)
    assert _produced("jobs/cli-0001.json", patterns) and _produced("outputs/{job_id}.{ext}", patterns)
    assert not _produced("jobs-index/{job_id}.json", patterns) and not _produced("workers/{worker_id}", patterns)


_OUTSIDE = re.compile(r"(?:\.\./)+shared|/work/|/home/|/root/|/Users/|\bC:\\")


def test_docs_name_nothing_outside_the_repository():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert not _OUTSIDE.search(text), f"{doc.relative_to(REPO)}: {_OUTSIDE.search(text)}"
        for target in re.findall(r"\]\(([^)#\s]+)", text):  # relative links stay inside and exist
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(REPO), f"{doc.relative_to(REPO)} links outside: {target}"
            assert resolved.exists(), f"{doc.relative_to(REPO)} links to missing {target}"
