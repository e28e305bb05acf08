"""WAV reading and writing, resampling, and the speech features (shapes, normalisation)."""

import struct

import numpy as np
import pytest

from bptt.data import audio
from bptt.errors import BpttError, DataError

pytest.importorskip("python_speech_features", reason="extra 'speech'")
pytest.importorskip("scipy", reason="extra 'speech'")


def _tone(seconds: float, freq: float = 440.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).standard_normal(len(t)) * 0.01
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def test_wav_round_trip_is_16_bit_exact(tmp_path):
    x = _tone(0.3)
    path = audio.write_wav(tmp_path / "a.wav", x)
    y, rate = audio.read_wav(path)
    assert rate == 16_000 and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= 0.5 / 32768 + 1e-7
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_a_streamed_header_reads_the_samples_present():
    """espeak-ng --stdout writes 0x7ffff000 as the data size; the samples present count."""
    pcm = (np.arange(100, dtype="<i2") * 100).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    data = b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
    data += fmt + b"data" + struct.pack("<I", 0x7FFFF000) + pcm
    x, rate = audio.decode_wav(data)
    assert rate == 22050 and len(x) == 100
    np.testing.assert_allclose(x, np.arange(100) * 100 / 32768, rtol=0, atol=1e-7)


def test_stereo_float_wav_mixes_to_mono():
    frames = np.array([[0.5, -0.5], [1.0, 0.0]], dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 2, 8000, 64000, 8, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", frames.nbytes) + frames.tobytes()
    x, rate = audio.decode_wav(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert rate == 8000
    np.testing.assert_allclose(x, [0.0, 0.5])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a wav file at all", "not a WAV file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (
            b"RIFF\x20\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
            + struct.pack("<HHIIHH", 1, 1, 8000, 24000, 3, 24),
            "got format tag 1, 24 bits",
        ),
    ],
)
def test_bad_wav_data_is_named(data, message):
    if b"fmt " in data:
        data += b"data\x03\x00\x00\x00abc"
    with pytest.raises(DataError, match=message):
        audio.decode_wav(data)


def test_resample_keeps_duration_and_frequency():
    x = _tone(1.0, 1000.0, rate=22050)
    y = audio.resample(x, 22050, 16_000)
    assert y.dtype == np.float32 and len(y) == 16_000
    spectrum = np.abs(np.fft.rfft(y))  # 1 Hz bins over one second
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1


@pytest.mark.parametrize(("kind", "width"), [("logmel", 40), ("mfcc", 39)])
def test_features_shape_and_per_utterance_normalisation(kind, width):
    n = 16_000  # one second: 1 + ceil((16000 - 400) / 160) = 99 frames of 25 ms every 10 ms
    f = audio.features(_tone(n / 16_000), kind)
    assert f.shape == (99, width) == (99, audio.feature_size(kind)) and f.dtype == np.float32
    np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(f.std(axis=0), 1.0, atol=1e-2)  # ε = 1e-5 under std
    raw = audio.log_mel(_tone(1.0)) if kind == "logmel" else audio.mfcc(_tone(1.0))
    expected = (raw - raw.mean(axis=0)) / (raw.std(axis=0) + 1e-5)
    np.testing.assert_allclose(f, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(raw.mean(axis=0)).max() > 1.0  # the raw features were not centred already


def test_log_mel_peaks_in_the_band_of_the_tone():
    low, high = audio.log_mel(_tone(0.5, 300.0)), audio.log_mel(_tone(0.5, 4000.0))
    assert low.shape == high.shape == (49, 40)
    assert np.argmax(low.mean(axis=0)) < 10 < 25 < np.argmax(high.mean(axis=0))


def test_feature_errors_name_what_was_expected():
    with pytest.raises(BpttError, match="one of logmel, mfcc, lpcmel; got 'fbank'"):
        audio.features(_tone(0.1), "fbank")
    with pytest.raises(BpttError, match=r"at least one 25 ms window .400 samples.*got 100"):
        audio.features(np.zeros(100))
    with pytest.raises(BpttError, match=r"one channel of samples \(N,\); got shape \(2, 400\)"):
        audio.features(np.zeros((2, 400)))
