"""Independent chains of a neural volume decode (and encode) on worker processes.

The parallel result must be exactly the serial one, whatever the worker count; a corrupt stream
inside a worker gives the same one-line error as decoding in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_neural_codec import phantom

from fedcodec.shared.codecs.base import get_codec
from fedcodec.shared.errors import CorruptDataError, FedcodecError
from fedcodec.shared.neural import chains as chains_module
from fedcodec.shared.neural.chains import (
    WORKERS_ENV,
    chain_starts,
    chains,
    run_jobs,
    worker_count,
)
from fedcodec.shared.neural.codec import stream_reach


@pytest.fixture(autouse=True)
def _parallel_even_when_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """The phantoms here are far below the work that starts worker processes by default."""
    monkeypatch.setattr(chains_module, "PARALLEL_MIN_PIXELS", 0)


def _worker_identity(value: int) -> tuple[int, int, str]:
    import os

    return value, os.getpid(), os.environ.get("FEDCODEC_NEURAL_THREADS", "")


def test_jobs_run_on_worker_processes_with_one_thread_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv(WORKERS_ENV, "2")
    results = run_jobs(_worker_identity, [(1,), (2,), (3,)], [1, 5, 2])
    assert [r[0] for r in results] == [1, 2, 3]  # the order of the jobs
    assert all(pid != os.getpid() and threads == "1" for _, pid, threads in results)
    monkeypatch.setattr(chains_module, "PARALLEL_MIN_PIXELS", 100)
    assert {pid for _, pid, _ in run_jobs(_worker_identity, [(1,), (2,)], [1, 5])} == {
        os.getpid()}  # too little work: in this process


def _volume(slices: int, seed: int = 0) -> np.ndarray:
    return np.stack([phantom((40, 36), 12, seed=seed + i, noise=0.02) for i in range(slices)])


def test_chain_starts_follow_the_references() -> None:
    assert chain_starts([0, 0, 1, 3, 3, 4]) == [0, 3]  # slice 3 coded alone, nothing crosses it
    assert chain_starts([0, 0, 2, 0, 4]) == [0, 4]  # slice 3 reaches back to 0 (a period)
    assert chain_starts([0, 1, 2]) == [0, 1, 2]
    assert chain_starts([-2, 1]) == [0, 1]  # a corrupt reach joins the first chain
    assert [len(c) for c in chains([0, 0, 2, 2, 2])] == [2, 3]
    assert chain_starts([]) == []


def test_restart_starts_chains_lossless_and_near_lossless(
        monkeypatch: pytest.MonkeyPatch) -> None:
    volume = _volume(7)
    codec = get_codec("neural:fallback=0,interslice=2,restart=3")
    monkeypatch.setenv(WORKERS_ENV, "1")
    serial = codec.encode_volume(volume, 12)
    reaches = [i - stream_reach(s) for i, s in enumerate(serial)]
    assert chain_starts(reaches) == [0, 3, 6]
    assert [stream_reach(s) for s in serial] == [0, 1, 1, 0, 1, 1, 0]
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert codec.encode_volume(volume, 12) == serial  # the same bytes on two processes
    assert np.array_equal(codec.decode_volume(serial), volume)
    assert get_codec("neural:fallback=0,interslice=2").describe().get("restart") is None
    assert codec.describe()["restart"] == 3
    near = get_codec("neural:mode=near-lossless,tau=2,fallback=0,interslice=2,restart=4")
    monkeypatch.setenv(WORKERS_ENV, "1")
    serial = near.encode_volume(volume, 12)
    assert [stream_reach(s) for s in serial] == [0, 1, 1, 1, 0, 1, 1]
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert near.encode_volume(volume, 12) == serial
    assert np.abs(near.decode_volume(serial).astype(int) - volume).max() <= 2


def test_lossless_volume_encodes_in_spans_to_the_same_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lossless: the references are the originals, so spans encode apart, period included."""
    base = _volume(3, seed=40)
    volume = np.concatenate([base, base + 3, base + 5, base + 9])  # 4 volumes of 3 slices
    codec = get_codec("neural:fallback=0,period=3")
    monkeypatch.setenv(WORKERS_ENV, "1")
    serial = codec.encode_volume(volume, 12)
    assert max(stream_reach(s) for s in serial) == 3
    for workers in ("2",):
        monkeypatch.setenv(WORKERS_ENV, workers)
        assert codec.encode_volume(volume, 12) == serial, workers
    assert np.array_equal(codec.decode_volume(serial), volume)


def test_rate_target_codes_its_candidates_on_workers_to_the_serial_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bpp target codes the series at every ladder tau and at two refinement lists, all
    independent, on worker processes: same streams and taus as coding them in order."""
    volume = _volume(4, seed=50)
    volume[1] //= 8  # low contrast: the allocation gives it another bound
    codec = get_codec("neural:mode=lossy,bpp=2")
    monkeypatch.setenv(WORKERS_ENV, "1")
    serial, taus = codec.encode_volume(volume, 12), list(codec.last_taus)
    assert len(set(taus)) > 1, taus  # the per-slice allocation ran (ladder and refinements)
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert codec.encode_volume(volume, 12) == serial and codec.last_taus == taus


def test_parallel_decode_of_several_volumes_is_the_serial_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    codec = get_codec("neural:fallback=0,interslice=2,restart=2")
    volumes = [_volume(5, seed=10), _volume(3, seed=20)[:, :32, :30]]
    streams = [codec.encode_volume(v, 12) for v in volumes]
    monkeypatch.setenv(WORKERS_ENV, "1")
    serial = [codec.decode_volume(s) for s in streams]
    monkeypatch.setenv(WORKERS_ENV, "2")
    parallel = codec.decode_volumes(streams)
    for a, b, v in zip(serial, parallel, volumes, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b) and np.array_equal(b, v)


def test_corrupt_stream_in_a_worker_gives_the_serial_one_line_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    codec = get_codec("neural:fallback=0,interslice=2,restart=2")
    streams = codec.encode_volume(_volume(6, seed=30), 12)
    bad = bytearray(streams[4])
    bad[-12] ^= 0x5A  # deep in the rANS payload: only the pixel checksum notices
    streams[4] = bytes(bad)
    messages = []
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        with pytest.raises(CorruptDataError) as info:
            codec.decode_volume(streams)
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "\n" not in messages[0]
    truncated = [*streams[:3], streams[3][:5], *streams[4:]]
    with pytest.raises(CorruptDataError):
        codec.decode_volume(truncated)


def test_worker_count_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "8")
    assert worker_count(3) == 3
    monkeypatch.setenv(WORKERS_ENV, "two")
    with pytest.raises(FedcodecError, match=WORKERS_ENV):
        worker_count(3)
    monkeypatch.setenv(WORKERS_ENV, "0")
    with pytest.raises(FedcodecError, match="at least 1"):
        worker_count(3)
    with pytest.raises(FedcodecError, match="restart"):
        get_codec("neural:restart=-1")
    monkeypatch.delenv(WORKERS_ENV)
    monkeypatch.setattr(chains_module, "usable_cores", lambda: 2)
    monkeypatch.setattr(chains_module, "others_runnable", lambda: 0.5)
    assert worker_count(5) == 2  # a core is free
    monkeypatch.setattr(chains_module, "others_runnable", lambda: 2.0)
    assert worker_count(5) == 1  # other work fills both cores: a second worker only adds cost


def test_others_runnable_reads_this_machine() -> None:
    assert chains_module.others_runnable() >= 0.0


def test_study_decompresses_series_together_to_the_serial_files(
        tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fedcodec decompress`` hands a study's neural series to ``decode_volumes`` together."""
    import pydicom

    from fedcodec.client.cli import main

    study = _two_series_study(tmp_path)
    fcz = tmp_path / "s.fcz"
    assert main(["compress", str(study), "-o", str(fcz), "--quiet",
                 "--codec", "neural:fallback=0,restart=4"]) == 0
    from fedcodec.shared.neural.codec import NeuralCodec

    batches = []
    decode = NeuralCodec._decode_volumes
    monkeypatch.setattr(NeuralCodec, "_decode_volumes",
                        lambda self, volumes: batches.append(len(volumes)) or decode(self, volumes))
    pixels = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        out = tmp_path / f"out{workers}"
        assert main(["decompress", str(fcz), "-o", str(out), "--quiet"]) == 0
        files = sorted(out.rglob("*.dcm"))
        assert len(files) == 2  # multi-frame: one file of 10 frames per series
        pixels[workers] = [pydicom.dcmread(f).pixel_array for f in files]
        assert pixels[workers][0].shape == (10, 64, 64)
    capsys.readouterr()
    assert batches == [2, 2]  # both series in one call, each time
    assert all(np.array_equal(a, b) for a, b in zip(pixels["1"], pixels["2"], strict=True))


def test_study_compresses_series_on_workers_to_the_serial_container(
        tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fedcodec compress`` codes a study's series on worker processes (any mode; here lossy
    within a bound, one coding per series: a rate target's candidates on workers are
    :func:`test_rate_target_codes_its_candidates_on_workers_to_the_serial_bytes`): the container
    is byte for byte the serial one, and a series that cannot be coded (an unreachable rate
    target) still stops the run with its one-line error."""
    from fedcodec.client.cli import main

    study = _two_series_study(tmp_path)
    submitted: list[str] = []

    class CountingPool(chains_module.ProcessPoolExecutor):  # type: ignore[misc]
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            submitted.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(chains_module, "ProcessPoolExecutor", CountingPool)
    containers, jobs = {}, {}
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        submitted.clear()
        out = tmp_path / f"s{workers}.fcz"
        assert main(["compress", str(study), "-o", str(out), "--quiet", "--mode", "lossy",
                     "--max-error", "4"]) == 0
        containers[workers], jobs[workers] = out.read_bytes(), list(submitted)
    assert containers["1"] == containers["2"]
    # in order, nothing went to a worker; with two workers both series did
    assert jobs == {"1": [], "2": ["_code_series", "_code_series"]}
    out = tmp_path / "bad.fcz"
    assert main(["compress", str(study), "-o", str(out), "--quiet", "--mode", "lossy",
                 "--ratio", "100000"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach" in err and not out.exists(), err


def _two_series_study(tmp_path: Path) -> Path:
    """pydicom-data's 10-frame 64x64 MR twice, as two series of one study folder."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid
    from test_compress_cli import PYDICOM_DATA

    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(PYDICOM_DATA / "emri_small.dcm", study / "a.dcm")
    second = pydicom.dcmread(PYDICOM_DATA / "emri_small.dcm")
    second.SeriesInstanceUID, second.SOPInstanceUID = generate_uid(), generate_uid()
    second.SeriesDescription = "second"
    second.save_as(study / "b.dcm")
    return study
