"""Speech augmentation: each part does what its docstring says to a known signal, the
chain is deterministic from its seed, and bad part names are refused."""

import numpy as np
import pytest

from bptt.data import augment
from bptt.data.audio import SAMPLE_RATE, dither, features, log_mel, pcen
from bptt.errors import BpttError

pytest.importorskip("scipy", reason="extra 'speech'")


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE  # (N,)
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))  # (N//2+1,)
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(x))


def test_speed_changes_duration_and_pitch_together():
    x = tone(440.0)
    fast = augment.speed(x, 1.1)
    assert abs(len(fast) - len(x) / 1.1) < 50
    assert abs(peak_hz(fast) - 484.0) < 6


def test_pitch_shift_moves_the_pitch_and_keeps_the_duration():
    x = tone(440.0)
    up = augment.pitch_shift(x, 3.0)
    assert abs(len(up) - len(x)) < 0.05 * len(x)
    assert abs(peak_hz(up) - 440.0 * 2 ** (3 / 12)) < 10


def test_stretch_keeps_the_pitch_and_changes_the_duration():
    x = tone(300.0)
    long = augment.stretch(x, 1.25)
    assert abs(len(long) - 1.25 * len(x)) < 0.05 * len(x)
    assert abs(peak_hz(long) - 300.0) < 5


def test_room_impulse_has_the_requested_direct_to_reverberant_ratio_and_decays():
    h = augment.room_impulse(np.random.default_rng(0), rt60=0.4, drr_db=6.0)
    assert h[0] == 1.0 and len(h) == int(0.4 * SAMPLE_RATE)
    assert abs(10 * np.log10(1.0 / np.sum(h[1:] ** 2)) - 6.0) < 1e-6
    quarter = len(h) // 4
    assert np.sum(h[1:quarter] ** 2) > 100 * np.sum(h[-quarter:] ** 2)  # -60 dB at RT60


def test_reverb_keeps_length_and_level_and_smears_a_click():
    x = np.zeros(SAMPLE_RATE, dtype=np.float32)
    x[1000] = 1.0
    y = augment.reverb(x, np.random.default_rng(1))
    assert len(y) == len(x)
    assert abs(np.sqrt(np.mean(y.astype(np.float64) ** 2)) - np.sqrt(np.mean(x**2))) < 1e-6
    assert np.count_nonzero(np.abs(y[1001:]) > 1e-4) > 1000  # a tail after the click


def test_telephone_passes_the_voice_band_and_removes_the_rest():
    assert abs(peak_hz(augment.telephone(tone(1000.0))) - 1000.0) < 5
    for freq in (100.0, 6000.0):  # out of band, beside an in-band tone
        y = augment.telephone(tone(freq) + tone(1000.0))
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))  # (N//2+1,)
        bin_of = len(y) / SAMPLE_RATE
        assert spectrum[int(freq * bin_of)] < 0.05 * spectrum[int(1000.0 * bin_of)], freq


def test_bandwidth_keeps_what_lies_below_half_the_rate_and_removes_the_rest():
    x = tone(1000.0) + tone(6000.0)  # (N,)
    for rate, kept in ((10000, False), (16000, True), (14000, True)):
        y = augment.bandwidth(x, rate)
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))  # (N//2+1,)
        bin_of = len(y) / SAMPLE_RATE
        assert len(y) == len(x) and y.dtype == np.float32
        low, high = spectrum[int(1000.0 * bin_of)], spectrum[int(6000.0 * bin_of)]
        assert (high > 0.9 * low) if kept else (high < 0.01 * low), rate


def test_noise_and_babble_are_mixed_at_the_drawn_snr():
    x = tone(500.0)
    noise = augment.coloured_noise(len(x), np.random.default_rng(0), "pink")
    y = augment.mix(x, noise, 10.0).astype(np.float64)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x) ** 2))
    assert abs(snr - 10.0) < 0.01
    others = [tone(f, 0.3) for f in (200.0, 700.0, 1300.0)]
    b = augment.babble(x, others, np.random.default_rng(2)).astype(np.float64)
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((b - x) ** 2))
    assert augment.BABBLE_SNR[0] - 0.01 <= snr <= augment.BABBLE_SNR[1] + 0.01


def test_spec_augment_masks_runs_of_frames_and_channels_with_zero():
    f = np.ones((100, 40), dtype=np.float32)
    masked = augment.spec_augment(f, np.random.default_rng(3))
    assert masked.shape == f.shape and f.min() == 1.0  # the input is left alone
    zero_rows = np.flatnonzero((masked == 0).all(axis=1))
    zero_cols = np.flatnonzero((masked == 0).all(axis=0))
    assert len(zero_rows) <= 2 * 10 and len(zero_cols) <= 2 * 8
    assert len(zero_rows) + len(zero_cols) > 0
    assert set(np.unique(masked)) <= {0.0, 1.0}


def test_the_chain_is_deterministic_from_the_seed_and_each_part_switches():
    x = tone(300.0) + tone(1200.0)
    others = [tone(800.0, 0.5)]
    a = augment.augment_audio(x, augment.PARTS, np.random.default_rng(5), others)
    b = augment.augment_audio(x, augment.PARTS, np.random.default_rng(5), others)
    c = augment.augment_audio(x, augment.PARTS, np.random.default_rng(6), others)
    assert np.array_equal(a, b) and not (len(a) == len(c) and np.array_equal(a, c))
    assert np.array_equal(augment.augment_audio(x, (), np.random.default_rng(5)), x)
    rng = np.random.default_rng
    for part in augment.AUDIO_PARTS:  # each part alone changes the clip for some seed
        changed = any(
            not np.array_equal(augment.augment_audio(x, (part,), rng(s), others), x)
            for s in range(6)
        )
        assert changed, part


def test_part_names_are_parsed_and_bad_ones_refused():
    assert augment.parse_parts("") == ()
    assert augment.parse_parts("reverb, speed") == ("speed", "reverb")
    assert augment.parse_parts("all") == augment.ALL
    assert "vocoder" not in augment.ALL and "bandwidth" not in augment.ALL
    assert augment.parse_parts("vocoder,all,bandwidth") == augment.PARTS
    with pytest.raises(BpttError, match=r"--augment takes a comma-separated list.*'echo'"):
        augment.parse_parts("speed,echo")


def test_pcen_nearly_ignores_a_gain_that_shifts_every_log_mel_channel():
    pytest.importorskip("python_speech_features", reason="extra 'speech'")
    x = tone(400.0) + 0.1 * tone(2500.0)
    energies = np.exp(log_mel(x))  # (T, 40)
    a, b = pcen(energies), pcen(energies * 100.0)  # 20 dB louder
    assert np.abs(a - b).max() < 0.08 * np.abs(a).max()  # 100^(1 - α) = 1.096 is left
    assert np.abs(np.log(energies * 100) - np.log(energies)).min() > 4.6  # log-mel moves
    f = features(x, "logmel", norm="pcen")
    assert f.shape == energies.shape and f.dtype == np.float32
    with pytest.raises(BpttError, match="pcen with logmel"):
        features(x, "mfcc", norm="pcen")


def test_dither_pads_and_adds_seeded_noise_30_db_down():
    x = np.concatenate([np.zeros(4000, np.float32), tone(500.0)])
    y = dither(x)
    pad = SAMPLE_RATE // 4
    assert len(y) == len(x) + 2 * pad and np.array_equal(y, dither(x))
    frames = y[: len(y) // 160 * 160].reshape(-1, 160)
    assert (np.abs(frames).max(axis=1) > 0).all()  # no digitally silent frame is left
    noise = y[:pad].astype(np.float64)
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    snr = 10 * np.log10(np.mean(padded**2) / np.mean(noise**2))
    assert abs(snr - 30.0) < 1.0


def test_vtlp_moves_a_tone_to_the_channel_of_the_warped_frequency():
    psf = pytest.importorskip("python_speech_features", reason="extra 'speech'")
    from bptt.data.audio import warped_filterbank

    assert np.array_equal(warped_filterbank(40, 512, SAMPLE_RATE, 1.0),
                          psf.get_filterbanks(40, 512, SAMPLE_RATE))  # fmt: skip
    peak = lambda x, warp=1.0: int(log_mel(x, warp=warp).mean(axis=0).argmax())  # noqa: E731
    for alpha, moved in ((0.8, 800.0), (1.2, 1200.0)):
        assert peak(tone(1000.0), alpha) == peak(tone(moved)) != peak(tone(1000.0))
    x = tone(300.0) + tone(2500.0)
    assert np.array_equal(log_mel(x, warp=1.0), log_mel(x))
    warped = features(x, warp=1.1)
    assert warped.shape == features(x).shape and not np.allclose(warped, features(x))


def test_the_warp_factor_is_drawn_only_with_vtlp_and_inside_its_range():
    rng = np.random.default_rng(0)
    assert augment.warp_factor(("speed",), rng) == 1.0
    alphas = [augment.warp_factor(("vtlp",), rng) for _ in range(200)]
    assert augment.WARP_RANGE[0] <= min(alphas) < 0.9 and 1.1 < max(alphas) <= 1.15


def test_tempo_stretches_the_clip_and_keeps_its_pitch():
    x = tone(440.0)
    outs = [augment.augment_audio(x, ("tempo",), np.random.default_rng(s)) for s in range(6)]
    out = next(y for y in outs if len(y) != len(x))  # applied with probability 1/2
    factor = len(out) / len(x)
    assert augment.TEMPO_RANGE[0] - 0.01 <= factor <= augment.TEMPO_RANGE[1] + 0.01
    assert abs(peak_hz(out) - 440.0) < 6


def test_the_equaliser_colours_tones_differently_and_keeps_the_level():
    x = tone(200.0) + tone(4000.0)
    gains = []
    for seed in range(4):
        y = augment.equalise(x, np.random.default_rng(seed)).astype(np.float64)
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x.astype(float) ** 2)))
        spectrum = np.abs(np.fft.rfft(y))  # 1 Hz bins: the tones at 200 and 4000
        gains.append(20 * np.log10(spectrum[4000] / spectrum[200]))
    assert max(gains) - min(gains) > 3.0  # the balance of high and low moves, seed to seed


def vowel(f0: float, formants=(700.0, 1200.0), seconds: float = 0.5, noise: float = 0.0):
    """A pulse train at f0 (or, noise > 0, white noise) through two resonators."""
    import scipy.signal

    n = int(seconds * SAMPLE_RATE)
    source = np.zeros(n)  # (N,)
    source[:: int(SAMPLE_RATE / f0)] = 1.0
    if noise:
        source = noise * np.random.default_rng(9).standard_normal(n)
    y = source
    for f in formants:
        r, theta = 0.97, 2 * np.pi * f / SAMPLE_RATE
        y = scipy.signal.lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], y)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def envelope_peak_hz(x: np.ndarray) -> float:
    """The strongest frequency of the spectrum smoothed over 200 Hz (the formant, not a
    harmonic)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2  # (N//2+1,)
    width = int(200 * len(x) / SAMPLE_RATE)
    smooth = np.convolve(spectrum, np.ones(width) / width, "same")
    return float(np.argmax(smooth) * SAMPLE_RATE / len(x))


def pitch_hz(x: np.ndarray, at: int = 4000, width: int = 800) -> float:
    x = np.asarray(x, dtype=np.float64)[at - width // 2 : at + width // 2]
    ac = np.correlate(x, x, "full")[len(x) - 1 :]  # (N,)
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))


def test_the_vocoder_keeps_the_formants_and_replaces_the_source():
    x = vowel(100.0)
    assert abs(pitch_hz(x) - 100.0) < 2 and abs(envelope_peak_hz(x) - 700.0) < 60
    for seed in range(3):
        glide = np.random.default_rng(seed).uniform(*augment.F0_RANGE, size=2)  # its first draw
        y = augment.vocoder(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(
            np.sqrt(np.mean(x.astype(np.float64) ** 2)), rel=1e-5)  # fmt: skip
        assert abs(envelope_peak_hz(y) - 700.0) < 60  # the first formant stays
        assert abs(pitch_hz(y) / glide.mean() - 1) < 0.05, (pitch_hz(y), glide)  # mid-glide
    assert np.array_equal(augment.vocoder(x, np.random.default_rng(0)),
                          augment.vocoder(x, np.random.default_rng(0)))  # fmt: skip


def test_the_vocoder_voices_periodic_frames_and_leaves_noise_unvoiced():
    def periodicity(y):
        y = np.asarray(y, dtype=np.float64)[3600:4400]
        ac = np.correlate(y, y, "full")[len(y) - 1 :]
        return ac[SAMPLE_RATE // 400 : SAMPLE_RATE // 60].max() / ac[0]

    voiced = augment.vocoder(vowel(120.0), np.random.default_rng(1))
    hiss = augment.vocoder(vowel(120.0, noise=1.0), np.random.default_rng(1))
    assert periodicity(voiced) > 0.5 and periodicity(hiss) < 0.3
    assert abs(envelope_peak_hz(hiss) - 700.0) < 100  # noise coloured by the same formants


def test_lpc_solves_the_normal_equations_of_every_frame():
    import scipy.linalg

    from bptt.data.audio import lpc

    frames = np.random.default_rng(4).standard_normal((5, 400)) * np.hanning(400)  # (T, W)
    frames[1] = vowel(130.0)[1000:1400] * np.hanning(400)
    A, energy = lpc(frames, order=12)
    for f, a, e in zip(frames, A, energy, strict=True):
        r = np.correlate(f, f, "full")[399 : 399 + 13]  # (13,)
        r[0] = r[0] * (1 + 1e-9) + 1e-12  # lpc's white-noise correction
        assert np.allclose(-a[1:], scipy.linalg.solve_toeplitz(r[:12], r[1:]), atol=1e-6)
        assert e == pytest.approx(r @ a, rel=1e-6)
        assert 0 < e <= r[0]


def test_lpcmel_keeps_the_formants_and_drops_the_pitch():
    pytest.importorskip("python_speech_features", reason="extra 'speech'")
    low, high = vowel(100.0), vowel(160.0)  # one vowel, two pitches
    other = vowel(100.0, formants=(400.0, 2200.0))  # another vowel

    def dist(kind, a, b):  # of the mean spectra's shapes (each less its mean level)
        m = [log_mel(x, envelope=kind == "lpcmel").mean(axis=0) for x in (a, b)]  # (40,) each
        return np.abs((m[0] - m[0].mean()) - (m[1] - m[1].mean())).mean()

    assert dist("lpcmel", low, high) < 0.5 * dist("logmel", low, high)  # harmonics gone
    assert dist("lpcmel", low, other) > 3 * dist("lpcmel", low, high)  # formants kept
    f = features(low, "lpcmel", warp=1.1, norm="pcen")
    assert f.shape == features(low).shape and np.isfinite(f).all()
