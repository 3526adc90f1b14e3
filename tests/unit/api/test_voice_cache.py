"""The routes' view of the voice library (`consumer/api/voice_cache.py`) on a moto server: manifests, unknown
voices as 404 or 400, speech requests served from the cache until it is due for a look again, deletion."""

from __future__ import annotations

import asyncio

import pytest

from consumer.api.voice_cache import VoiceCache
from consumer.core.errors import ApiError
from consumer.producer.voice_library import VoiceLibrary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def library(stack) -> VoiceLibrary:
    return VoiceLibrary(stack.clients.s3, stack.resources.bucket)  # holds the example voice `basic-en`


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(library, clock) -> VoiceCache:
    return VoiceCache(library, revalidate_s=60, clock=clock)


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as raised:
        asyncio.run(call)
    return raised.value


def test_a_known_voice_is_its_manifest(cache):
    manifest = asyncio.run(cache.require("basic-en"))
    assert manifest["voice_id"] == "basic-en" and manifest["transcript"]


@pytest.mark.parametrize("voice_id", ["nobody", "../basic-en", "Bad Id"])
def test_an_unknown_or_malformed_voice_is_404_for_its_url_and_400_for_a_request(cache, voice_id):
    error = refused(cache.require(voice_id))
    assert (error.status, error.code, error.param) == (404, "unknown_voice", "voice")
    assert voice_id in error.message and "POST /v1/voices" in error.message
    assert refused(cache.require(voice_id, status=400, cached=True)).status == 400


def test_a_speech_request_reuses_a_manifest_until_it_is_due_for_a_look_again(cache, library, clock):
    first = asyncio.run(cache.require("basic-en", cached=True))
    library.remove("basic-en")  # behind the cache's back (another replica)
    clock.now += 59
    assert asyncio.run(cache.require("basic-en", status=400, cached=True)) == first  # no look within a minute
    assert refused(cache.require("basic-en")).status == 404  # a voice's URL always looks
    clock.now += 2
    assert refused(cache.require("basic-en", status=400, cached=True)).status == 400


def test_removing_a_voice_deletes_it_and_forgets_it(cache, library):
    asyncio.run(cache.require("basic-en", cached=True))
    asyncio.run(cache.remove("basic-en"))
    assert library.show("basic-en") is None
    assert refused(cache.require("basic-en", status=400, cached=True)).status == 400
    assert refused(cache.remove("basic-en")).status == 404
