"""Data augmentation for the speech tasks: the same words, heard through other channels.

A model trained on one synthesiser's voices learns that synthesiser's sound (its
level, spectral tilt, pitch contour, silence) as much as the words. Each part below
changes one of those, leaves the words alone, and is switched on by name
(``--augment speed,reverb,...``; ``all``: every one but the opt-in ``vocoder`` and
``bandwidth``, which ``all,vocoder,bandwidth`` adds). On audio, 16 kHz samples (N,):

    vocoder     LPC resynthesis (source-filter): each 25 ms frame's all-pole envelope
                G / A(z) (order 18, every 10 ms: :func:`bptt.data.audio.lpc`) kept, the
                excitation replaced by a pulse train on a new pitch contour, f0 gliding
                from f_a to f_b ~ U(80, 260) Hz, mixed with white noise by the frame's
                voicing (the residual's normalised autocorrelation peak at 60..400 Hz
                lags): the engine's own glottal source or vocoder (its pulse shape,
                jitter, phase, harmonics) is gone, the formants that tell the words stay
    speed       x'[n] = x(n·s)                 resampled, s ~ U(0.85, 1.15): tempo and
                                               pitch together (Kaldi's 3-way perturbation)
    tempo       duration × r, r ~ U(0.8, 1.25), pitch kept: overlap-add (WSOLA) alone
    pitch       pitch × 2^(k/12), k ~ U(-4, 4) semitones, duration kept: resampled by
                2^(k/12), then stretched back by overlap-add of 32 ms Hann frames
    reverb      x * h,  h[n] = δ[n] + g·e^(-6.9 n / (RT60·fs)) ξ[n]     ξ white, RT60 ~
                U(0.1, 0.7) s, g so the tail holds 10^(-DRR/10) of the direct energy,
                DRR ~ U(0, 12) dB: a synthetic room impulse response
    telephone   4th-order Butterworth band-pass 300..3400 Hz, then 8 kHz and back
    bandwidth   resampled to r and back, r ~ 8..16 kHz in steps of 500 Hz: the band above
                r/2 gone, as in a recording made at a lower rate (Festival's don voice
                speaks at 10 kHz); opt-in, like vocoder
    eq          an equaliser: |X(f)| × 10^(G(f)/20), G(f) = τ log2(f / 1 kHz) + Σ_k g_k
                exp(-(log2(f / f_k))² / 2w²) dB; tilt τ ~ U(-3, 3) dB/octave, two bands
                f_k ~ log-U(200, 6000) Hz, g_k ~ U(-8, 8) dB, w = 0.5 octave: another
                microphone or vocoder's colour (per-utterance CMVN removes a fixed one,
                a detector normalised once for all clips does not)
    noise       + white or pink noise at SNR ~ U(0, 25) dB
    babble      + 3..6 other training utterances summed, at SNR ~ U(5, 20) dB
    gain        × 10^(g/20), g ~ U(-20, 10) dB

and on features (T, D):

    vtlp        vocal-tract-length perturbation: the spectrum's frequencies scaled by
                α ~ U(0.85, 1.15) before the mel filters (piecewise linear above 4.8 kHz,
                :func:`bptt.data.audio.vtlp_unwarp`): formants move, pitch and timing stay
    specaugment 2 time masks of up to 10% of T frames and 2 frequency masks of up to
                D/5 channels, set to 0 (the mean, after normalisation): Park et al. 2019

Each part is applied to a clip with probability 1/2 (speed, vtlp and specaugment always),
in the order above, with a generator seeded by (seed, clip index): the same seed
gives the same augmented corpus.

Shapes: N samples, T frames, D features per frame.
"""

from __future__ import annotations

import numpy as np

from bptt.data.audio import LPC_ORDER, SAMPLE_RATE, lpc, resample
from bptt.errors import BpttError

AUDIO_PARTS = (
    "vocoder",
    "speed",
    "tempo",
    "pitch",
    "reverb",
    "telephone",
    "bandwidth",
    "eq",
    "noise",
    "babble",
    "gain",
)
FEATURE_PARTS = ("vtlp", "specaugment")
PARTS = AUDIO_PARTS + FEATURE_PARTS
# Named alone or beside "all", which leaves them out: a part added to "all" would change
# every clip that "all" augments after it (the parts draw from one generator in turn).
OPT_IN = ("vocoder", "bandwidth")
ALL = tuple(p for p in PARTS if p not in OPT_IN)
ALWAYS = ("speed", "vtlp", "specaugment")  # the rest: each with probability 1/2
SPEED_RANGE = (0.85, 1.15)
TEMPO_RANGE = (0.8, 1.25)
WARP_RANGE = (0.85, 1.15)
SEMITONES = 4.0
RT60_RANGE, DRR_RANGE = (0.1, 0.7), (0.0, 12.0)
NOISE_SNR, BABBLE_SNR = (0.0, 25.0), (5.0, 20.0)
GAIN_DB = (-20.0, 10.0)
BAND = (300.0, 3400.0)
BANDWIDTH_RATES = (8000, 16000, 500)  # Hz: lowest, highest, step of the recording rates
TILT_DB, EQ_DB, EQ_BANDS = 3.0, 8.0, (200.0, 6000.0)
F0_RANGE, PRE_EMPHASIS = (80.0, 260.0), 0.97


def parse_parts(text: str) -> tuple[str, ...]:
    """``"speed,reverb"`` -> ("speed", "reverb"); "all" -> every part but OPT_IN's;
    "all,vocoder" -> those and the vocoder; "" -> ()."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if "all" in names:
        names = [n for n in names if n != "all"] + list(ALL)
    bad = [n for n in names if n not in PARTS]
    if bad:
        raise BpttError(
            f"--augment takes a comma-separated list of {', '.join(PARTS)} "
            f"(or all, which is every one but {', '.join(OPT_IN)}); "
            f"got {', '.join(map(repr, bad))}"
        )
    return tuple(p for p in PARTS if p in names)


def _rms(x) -> float:
    return max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12)


def voicing(residual: np.ndarray, at: int, width: int = 400) -> float:
    """How periodic ``residual`` (N,) is around sample ``at``, 0..1: the largest normalised
    cross-correlation of its ``width`` samples from ``at`` with the same length l samples
    later, l over the pitch lags (60..400 Hz), mapped from 0.3..0.7 onto 0..1."""
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    seg = residual[at : at + width + hi]  # (width + hi,)
    if len(seg) < width + hi:
        seg = np.concatenate([seg, np.zeros(width + hi - len(seg))])
    cc = np.correlate(seg, seg[:width], "valid")  # (hi+1,) Σ seg[l+n] seg[n]
    energy = np.concatenate([[0.0], np.cumsum(seg**2)])  # (width+hi+1,)
    power = energy[width:] - energy[: hi + 1]  # (hi+1,) Σ seg[l+n]² over the window at l
    nccf = cc[lo:] / np.sqrt(np.maximum(power[0] * power[lo:], 1e-24))  # (hi-lo+1,)
    return float(np.clip((nccf.max() - 0.3) / 0.4, 0.0, 1.0))


def vocoder(x: np.ndarray, rng: np.random.Generator, frame: int = 400, hop: int = 160):
    """``x`` (N,) resynthesised from its LPC envelopes over a new excitation (see above):
    (N,) float32 at the same RMS. Per hop h, the pre-emphasised signal's Hann frame
    centred on it gives A_h and the residual power e_h = E_h / Σw²; the residual
    (inverse-filtered by A_h hop by hop) gives the voicing v_h (:func:`voicing`); the
    excitation √v_h·pulses + √(1-v_h)·noise (RMS 1) is filtered by √e_h / A_h(z), the
    filter's state carried from hop to hop, then de-emphasised."""
    import scipy.signal

    x64 = np.asarray(x, dtype=np.float64)
    n = len(x64)
    if n < frame:
        return np.asarray(x, dtype=np.float32)
    emph = scipy.signal.lfilter([1.0, -PRE_EMPHASIS], [1.0], x64)  # (N,)
    window = np.hanning(frame)  # (W,)
    padded = np.concatenate([np.zeros(frame // 2), emph, np.zeros(frame + hop)])
    slices = [slice(h * hop, min((h + 1) * hop, n)) for h in range(-(-n // hop))]
    frames = np.stack([padded[s.start + hop // 2 : s.start + hop // 2 + frame] for s in slices])
    models = list(zip(*lpc(frames * window), strict=True))  # [(A_h (p+1,), E_h)] per hop
    residual, state = np.zeros(n), np.zeros(LPC_ORDER)  # (N,)
    for s, (A, _) in zip(slices, models, strict=True):
        residual[s], state = scipy.signal.lfilter(A, [1.0], emph[s], zi=state)
    f0 = np.linspace(*rng.uniform(*F0_RANGE, size=2), n)  # (N,) Hz: a glide
    phase = np.cumsum(f0 / SAMPLE_RATE)  # (N,) periods so far
    pulses = np.diff(np.floor(phase), prepend=0.0) * np.sqrt(SAMPLE_RATE / f0)  # (N,) RMS≈1
    noise = rng.standard_normal(n)  # (N,)
    y, state = np.zeros(n), np.zeros(LPC_ORDER)  # (N,)
    for s, (A, energy) in zip(slices, models, strict=True):
        v = voicing(residual, max(s.start + hop // 2 - frame // 2, 0), frame)
        u = np.sqrt(v) * pulses[s] + np.sqrt(1 - v) * noise[s]  # (hop,)
        gain = np.sqrt(energy / np.sum(window**2))
        y[s], state = scipy.signal.lfilter([gain], A, u, zi=state)
    y = scipy.signal.lfilter([1.0], [1.0, -PRE_EMPHASIS], y)  # (N,)
    return (y * _rms(x64) / _rms(y)).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` (N,) played ``factor`` times faster: (≈N/factor,), tempo and pitch together."""
    rate_in = round(SAMPLE_RATE * factor / 100) * 100  # read at this rate, written at 16 kHz
    return resample(x, rate_in, SAMPLE_RATE)  # (N·16000/rate_in,)


def stretch(x: np.ndarray, factor: float, frame: int = 512, tolerance: int = 160) -> np.ndarray:
    """``x`` (N,) made ``factor`` times longer, pitch kept, by WSOLA: Hann frames laid
    down every frame/2 samples, frame i read near i·frame/(2·factor), shifted by up to
    ``tolerance`` samples to the offset whose frame best continues the previous one
    (the largest cross-correlation), then summed."""
    x = np.asarray(x, dtype=np.float64)
    hop_out = frame // 2
    hop_in = hop_out / factor
    n_frames = max(int((len(x) - frame) / hop_in) + 1, 1)
    padded = np.concatenate([np.zeros(tolerance), x, np.zeros(frame + 2 * tolerance)])
    window = np.hanning(frame)  # (frame,)
    out = np.zeros(n_frames * hop_out + frame)  # (N',)
    norm = np.zeros_like(out)
    prev = None
    for i in range(n_frames):
        a = tolerance + round(i * hop_in)  # nominal read position in padded
        if prev is not None:
            template = padded[prev + hop_out : prev + hop_out + frame]  # (frame,)
            region = padded[a - tolerance : a + tolerance + frame]  # (frame + 2·tol,)
            score = np.correlate(region, template, mode="valid")  # (2·tol + 1,)
            a += int(np.argmax(score)) - tolerance
        out[i * hop_out : i * hop_out + frame] += window * padded[a : a + frame]
        norm[i * hop_out : i * hop_out + frame] += window
        prev = a
    n = round(len(x) * factor)
    return (out / np.maximum(norm, 1e-3))[:n].astype(np.float32)  # (≈N·factor,)


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """``x`` (N,) with its pitch moved by ``semitones``, its duration about the same."""
    ratio = 2 ** (semitones / 12)
    return stretch(speed(x, ratio), ratio)  # (≈N,)


def room_impulse(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """A synthetic room impulse response (L,): the direct path then exponentially
    decaying white noise reaching -60 dB after ``rt60`` s, its energy 10^(-drr/10) of
    the direct path's."""
    n = max(int(rt60 * SAMPLE_RATE), 2)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # (L,)
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-30))
    tail[0] = 1.0
    return tail  # (L,)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` (N,) convolved with a random room (same length, same RMS)."""
    import scipy.signal

    h = room_impulse(rng, rng.uniform(*RT60_RANGE), rng.uniform(*DRR_RANGE))  # (L,)
    y = scipy.signal.fftconvolve(np.asarray(x, dtype=np.float64), h)[: len(x)]  # (N,)
    return (y * _rms(x) / _rms(y)).astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """``x`` (N,) through a telephone channel: band-pass 300..3400 Hz, 8 kHz and back."""
    import scipy.signal

    sos = scipy.signal.butter(4, BAND, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    y = scipy.signal.sosfilt(sos, np.asarray(x, dtype=np.float64))  # (N,)
    y = resample(resample(y, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: len(x)]  # (N,)
    return (y * _rms(x) / _rms(y)).astype(np.float32)


def bandwidth(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` (N,) as if recorded at ``rate`` Hz: resampled down and back (anti-aliased), so
    nothing above rate/2 is left; same length."""
    y = resample(resample(x, SAMPLE_RATE, rate), rate, SAMPLE_RATE)  # (≈N,)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def equalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` (N,) through a random equaliser (a tilt and two bands, see above), same RMS."""
    spectrum = np.fft.rfft(np.asarray(x, dtype=np.float64))  # (N//2+1,)
    f = np.maximum(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE), 20.0)  # (N//2+1,) Hz
    octaves = np.log2(f / 1000.0)  # (N//2+1,)
    gain_db = rng.uniform(-TILT_DB, TILT_DB) * octaves  # (N//2+1,)
    for _ in range(2):
        centre = np.log2(np.exp(rng.uniform(*np.log(EQ_BANDS))) / 1000.0)
        gain_db += rng.uniform(-EQ_DB, EQ_DB) * np.exp(-((octaves - centre) ** 2) / (2 * 0.5**2))
    y = np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=len(x))  # (N,)
    return (y * _rms(x) / _rms(y)).astype(np.float32)


def coloured_noise(n: int, rng: np.random.Generator, colour: str) -> np.ndarray:
    """Noise (n,) of RMS 1: "white" or "pink" (power ∝ 1/f)."""
    noise = rng.standard_normal(n)  # (n,)
    if colour == "pink" and n > 1:
        spectrum = np.fft.rfft(noise)  # (n//2+1,)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=n)  # (n,)
    return noise / _rms(noise)


def mix(x: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` (N,) plus ``other`` (N,) scaled so that 10 log10(mean x² / mean o²) = snr_db."""
    scale = _rms(x) / _rms(other) * 10 ** (-snr_db / 20)
    return (np.asarray(x, dtype=np.float64) + scale * other).astype(np.float32)


def babble(x: np.ndarray, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``x`` (N,) over 3..6 of ``others`` (each (N_i,), looped or cut to N, each at RMS 1)
    summed, at a random SNR."""
    if not others:
        return x
    crowd = np.zeros(len(x))  # (N,)
    for i in rng.integers(len(others), size=int(rng.integers(3, 7))):
        o = np.asarray(others[i], dtype=np.float64)
        o = np.resize(o, len(x)) if len(o) else np.zeros(len(x))  # looped or cut: (N,)
        crowd += np.roll(o, int(rng.integers(len(x)))) / _rms(o)
    return mix(x, crowd, rng.uniform(*BABBLE_SNR))


def augment_audio(
    x: np.ndarray, parts: tuple[str, ...], rng: np.random.Generator, others=()
) -> np.ndarray:
    """``x`` (N,) through the audio ``parts`` (see the module docstring): (N',) float32."""
    y = np.asarray(x, dtype=np.float32)
    on = {p: p in parts and (p in ALWAYS or rng.random() < 0.5) for p in AUDIO_PARTS}
    if on["vocoder"]:
        y = vocoder(y, rng)
    if on["speed"]:
        y = speed(y, rng.uniform(*SPEED_RANGE))
    if on["tempo"]:
        y = stretch(y, rng.uniform(*TEMPO_RANGE))
    if on["pitch"]:
        y = pitch_shift(y, rng.uniform(-SEMITONES, SEMITONES))
    if on["reverb"]:
        y = reverb(y, rng)
    if on["telephone"]:
        y = telephone(y)
    if on["bandwidth"]:
        low, high, step = BANDWIDTH_RATES
        y = bandwidth(y, step * int(rng.integers(low // step, high // step + 1)))
    if on["eq"]:
        y = equalise(y, rng)
    if on["noise"]:
        colour = ("white", "pink")[int(rng.integers(2))]
        y = mix(y, coloured_noise(len(y), rng, colour), rng.uniform(*NOISE_SNR))
    if on["babble"]:
        y = babble(y, list(others), rng)
    if on["gain"]:
        y = (y * 10 ** (rng.uniform(*GAIN_DB) / 20)).astype(np.float32)
    return y  # (N',)


def warp_factor(parts: tuple[str, ...], rng: np.random.Generator) -> float:
    """The VTLP factor α of one augmented copy: drawn from WARP_RANGE when "vtlp" is among
    ``parts``, else 1 (features unwarped). Feed it to :func:`bptt.data.audio.features`."""
    return float(rng.uniform(*WARP_RANGE)) if "vtlp" in parts else 1.0


def spec_augment(
    f: np.ndarray, rng: np.random.Generator, time_masks: int = 2, freq_masks: int = 2
) -> np.ndarray:
    """Features (T, D) with ``time_masks`` runs of up to T/10 frames and ``freq_masks``
    runs of up to D/5 channels set to 0."""
    f = np.array(f, copy=True)  # (T, D)
    T, D = f.shape
    for _ in range(time_masks):
        w = int(rng.integers(0, max(T // 10, 1) + 1))
        t0 = int(rng.integers(0, max(T - w, 0) + 1))
        f[t0 : t0 + w] = 0.0
    for _ in range(freq_masks):
        w = int(rng.integers(0, max(D // 5, 1) + 1))
        d0 = int(rng.integers(0, max(D - w, 0) + 1))
        f[:, d0 : d0 + w] = 0.0
    return f  # (T, D)
