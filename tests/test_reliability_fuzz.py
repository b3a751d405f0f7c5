"""10,000 mutated files of every allowed format, each decoded in isolation under a 512 MB
address-space limit and a 5 s timeout: every outcome is a picture or a typed reason.

Runs are deterministic: a failure names its index, replayed with
``tests.reliability_fuzz.mutate(RUN_SEED, index)``. scripts/soak.sh runs many more.
"""

from __future__ import annotations

import signal

from tests.reliability_figures import record
from tests.reliability_fuzz import IsolatedDecoder, mutate, run_fuzz, seed_files
from tests.reliability_worker import CRASH_ON_DEMAND, HANG_ON_DEMAND

FILES = 10_000
RUN_SEED = 20261122


def test_every_seed_file_is_a_valid_picture_of_an_allowed_format() -> None:
    formats = set()
    with IsolatedDecoder() as decoder:
        for index, (name, data) in enumerate(seed_files()):
            outcome = decoder.decode(index, data)
            assert outcome.kind == "picture", (name, outcome)
            formats.add(outcome.detail.split()[0])
    assert formats == {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"}


def test_mutations_are_deterministic_and_actually_change_the_files() -> None:
    assert mutate(RUN_SEED, 7) == mutate(RUN_SEED, 7)
    seeds = dict(seed_files())
    changed = sum(mutate(RUN_SEED, i)[1] != seeds[mutate(RUN_SEED, i)[0]] for i in range(200))
    assert changed == 200


def test_the_harness_sees_a_crash_and_a_hang_and_replaces_the_worker() -> None:
    data = seed_files()[0][1]
    with IsolatedDecoder(timeout=1.0) as decoder:
        crash = decoder.decode(CRASH_ON_DEMAND, data)
        assert (crash.kind, crash.detail) == ("crash", f"worker exited with {-signal.SIGABRT}")
        assert decoder.decode(HANG_ON_DEMAND, data).kind == "hang"
        assert decoder.decode(2, data).kind == "picture"
        assert decoder.restarts == 2


def test_ten_thousand_mutated_files_give_only_pictures_or_typed_reasons() -> None:
    report = run_fuzz(FILES, RUN_SEED, workers=2, timeout=5.0)
    record("fuzz", seed=RUN_SEED, **report.as_dict())
    assert report.files == FILES
    assert report.failures == [], report.as_dict()
    assert report.kinds["crash"] == report.kinds["hang"] == report.kinds["untyped"] == 0
    # the damage reached the decoders: all the kinds of rejection, and some survivors
    assert {"decode_error", "truncated", "too_large"} <= set(report.reasons)
    assert report.kinds["picture"] > 100
    assert report.peak_rss_kb < 512 * 1024
