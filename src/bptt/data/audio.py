"""Audio in: WAV files, resampling, and the features a recurrent network reads.

WAV files are 16-bit PCM (written) or 8/16/32-bit PCM and 32/64-bit float
(read), mono or mixed down to mono. The reader walks the RIFF chunks itself so
that streamed files whose header still holds a placeholder size (``espeak-ng
--stdout`` writes one) read as the samples actually present.

Features follow the usual speech front end, with python_speech_features (extra
``speech``) doing the signal processing:

    emphasis s'[n] = s[n] - 0.97 s[n-1]
    frames   x_t = w ⊙ s'[t·hop : t·hop + win]       win 25 ms, hop 10 ms, w Hamming
    power    P_t = |FFT_512(x_t)|² / 512
    log-mel  m_t = log(M P_t)                          M: n_mels triangular mel filters
    MFCC     c_t = DCT-II(log(M P_t))[:n_ceps]         lifted; c_t[0] ← log frame energy
    deltas   Δc_t = Σ_{n=1..2} n (c_{t+n} - c_{t-n}) / (2 Σ n²)
    norm     f_t ← (f_t - mean_t f) / (std_t f + ε)  per utterance and per feature

Shapes: N samples, T frames, D features per frame.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from math import gcd
from pathlib import Path

import numpy as np

from bptt.errors import BpttError, DataError

SAMPLE_RATE = 16_000  # every clip of the speech tasks
WIN_SECONDS, HOP_SECONDS = 0.025, 0.010
FEATURES = ("logmel", "mfcc", "lpcmel")
LPC_ORDER = 18  # all-pole order: two poles a formant, 8 kHz holds about 8, and 2 for tilt
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def decode_wav(data: bytes, name: str = "WAV data") -> tuple[np.ndarray, int]:
    """Samples (N,) float32 in [-1, 1] and the sample rate of a RIFF/WAVE byte string.

    Raises:
        DataError: not a WAV file, no ``fmt``/``data`` chunk, or an encoding other
            than 8/16/32-bit PCM or 32/64-bit float.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"{name} is not a WAV file (expected a RIFF/WAVE header)")
    fmt, pos = None, 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]  # a streamed file's placeholder size is clipped
        if chunk == b"fmt ":
            if len(body) < 16:
                raise DataError(f"{name}: its fmt chunk has {len(body)} bytes, expected 16+")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # the sub-format's first field
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise DataError(f"{name}: the data chunk comes before any fmt chunk")
            return _samples(body, *fmt, name), fmt[2]
        pos += 8 + size + (size & 1)
    raise DataError(f"{name} has no {'data' if fmt else 'fmt'} chunk")


def _samples(body: bytes, tag: int, channels: int, rate: int, bits: int, name: str):
    kinds = {
        (_PCM, 8): "u1",
        (_PCM, 16): "<i2",
        (_PCM, 32): "<i4",
        (_FLOAT, 32): "<f4",
        (_FLOAT, 64): "<f8",
    }
    if (tag, bits) not in kinds or channels < 1 or rate < 1:
        raise DataError(
            f"{name}: expected 8/16/32-bit PCM or 32/64-bit float WAV; got format tag {tag}, "
            f"{bits} bits, {channels} channels at {rate} Hz"
        )
    kind = np.dtype(kinds[tag, bits])
    usable = len(body) // (kind.itemsize * channels) * kind.itemsize * channels
    raw = np.frombuffer(body[:usable], dtype=kind).reshape(-1, channels)  # (N, channels)
    x = raw.astype(np.float64)  # (N, channels)
    if kind.kind == "u":
        x = (x - 128.0) / 128.0
    elif kind.kind == "i":
        x /= float(2 ** (bits - 1))
    return x.mean(axis=1).astype(np.float32)  # (N,) mixed down to mono


def read_wav(path) -> tuple[np.ndarray, int]:
    """Samples (N,) float32 and the sample rate of the WAV file at ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror}") from None
    return decode_wav(data, f"'{path}'")


def encode_wav(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM mono WAV file of ``samples`` (N,), clipped to [-1, 1]."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise BpttError(f"a WAV file holds one channel of samples (N,); got shape {x.shape}")
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")  # (N,) x = pcm / 2¹⁵
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_wav(path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write ``samples`` as a 16-bit mono WAV at ``path``, atomically (temp file + rename)."""
    path = Path(path)
    data = encode_wav(samples, rate)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BpttError(f"cannot write '{path}': {e.strerror}") from None
    return path


def _scipy_signal():
    try:
        import scipy.signal
    except ImportError:
        raise BpttError(
            "resampling audio needs scipy; install the extra: pip install 'bptt[speech]'"
        ) from None
    return scipy.signal


def resample(samples: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """``samples`` (N,) at ``rate_in`` Hz -> (N·rate_out/rate_in,) float32 at ``rate_out`` Hz,
    by polyphase filtering (scipy.signal.resample_poly: anti-aliased, exact ratio)."""
    if rate_in < 1 or rate_out < 1:
        raise BpttError(f"sample rates must be positive; got {rate_in} -> {rate_out}")
    x = np.asarray(samples, dtype=np.float32)  # (N,)
    if rate_in == rate_out:
        return x
    g = gcd(rate_in, rate_out)
    y = _scipy_signal().resample_poly(x, rate_out // g, rate_in // g)  # (N·out/in,)
    return y.astype(np.float32)


def _psf():
    try:
        import python_speech_features
    except ImportError:
        raise BpttError(
            "speech features need the package 'python_speech_features', which is not "
            "installed; install the extra: pip install 'bptt[speech]'"
        ) from None
    return python_speech_features


def _check_audio(samples, rate: int) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise BpttError(f"features read one channel of samples (N,); got shape {x.shape}")
    if len(x) < int(WIN_SECONDS * rate):
        raise BpttError(
            f"a clip needs at least one {WIN_SECONDS * 1000:.0f} ms window "
            f"({int(WIN_SECONDS * rate)} samples at {rate} Hz); got {len(x)} samples"
        )
    return x


VTLP_CORNER = 4800.0  # Hz: the warp is α·f below it (scaled by min(α, 1)), linear to Nyquist


def vtlp_unwarp(hz: np.ndarray, alpha: float, nyquist: float) -> np.ndarray:
    """The frequencies f whose energy vocal-tract-length perturbation moves to ``hz``:
    the inverse of W(f) = α f for f ≤ F, and for f > F the line from (F, α F) to
    (Nyquist, Nyquist), F = VTLP_CORNER · min(α, 1) / α (Jaitly and Hinton 2013)."""
    corner = VTLP_CORNER * min(alpha, 1.0) / alpha
    grid = np.array([0.0, corner, nyquist])  # W is piecewise linear on this grid
    return np.interp(hz, grid * [alpha, alpha, 1.0], grid)


def warped_filterbank(n_mels: int, nfft: int, rate: int, alpha: float) -> np.ndarray:
    """python_speech_features' triangular mel filters (n_mels, nfft//2 + 1) read through
    a warp α of the frequency axis (:func:`vtlp_unwarp`); α = 1 gives its own filters."""
    psf = _psf()
    mels = np.linspace(psf.hz2mel(0), psf.hz2mel(rate / 2), n_mels + 2)  # (n_mels+2,)
    hz = vtlp_unwarp(psf.mel2hz(mels), alpha, rate / 2)  # (n_mels+2,)
    bins = np.floor((nfft + 1) * hz / rate).astype(int)  # (n_mels+2,)
    bank = np.zeros((n_mels, nfft // 2 + 1))
    for j in range(n_mels):
        lo, mid, hi = bins[j : j + 3]
        bank[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        bank[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return bank  # (n_mels, nfft//2 + 1)


def lpc(frames: np.ndarray, order: int = LPC_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """All-pole models of windowed ``frames`` (T, W) by the autocorrelation method:
    (A (T, order+1), A[:, 0] = 1, so that e[n] = Σ_k A_k x[n-k] is the prediction
    residual; E (T,), the residual's energy over the frame). Levinson-Durbin on the
    autocorrelations r_0..r_p, every frame at once:

        k_i = -(Σ_{j<i} A_j r_{i-j}) / E_{i-1},  A_j += k_i A_{i-j} (0 < j ≤ i),
        E_i = (1 - k_i²) E_{i-1},  E_0 = r_0 (raised by 1e-9 so a silent frame solves)."""
    frames = np.atleast_2d(np.asarray(frames, dtype=np.float64))  # (T, W)
    spectrum = np.fft.rfft(frames, 2 * frames.shape[1])  # (T, W+1): no circular wrap
    r = np.fft.irfft(np.abs(spectrum) ** 2)[:, : order + 1]  # (T, p+1)
    energy = r[:, 0] * (1 + 1e-9) + 1e-12  # (T,)
    A = np.zeros_like(r)  # (T, p+1)
    A[:, 0] = 1.0
    for i in range(1, order + 1):
        k = -np.einsum("tj,tj->t", A[:, :i], r[:, i:0:-1]) / energy  # (T,)
        A[:, 1 : i + 1] = A[:, 1 : i + 1] + k[:, None] * A[:, i - 1 :: -1]
        energy = energy * (1 - k**2)
    return A, np.maximum(energy, 1e-12)  # (T, p+1), (T,)


def log_mel(
    samples, rate: int = SAMPLE_RATE, n_mels: int = 40, warp: float = 1.0, envelope: bool = False
) -> np.ndarray:
    """Log mel filterbank energies (T, n_mels) of ``samples`` (N,): 25 ms windows, 10 ms hop,
    T = 1 + ceil((N - win) / hop). ``warp`` α ≠ 1: the spectrum's frequencies scaled by
    α first (vocal-tract-length perturbation, :func:`vtlp_unwarp`). ``envelope``: each
    frame's power spectrum replaced by its all-pole (LPC) envelope E / |A(e^{jω})|² / nfft
    (:func:`lpc`): the formants without the source's harmonics, breath or buzz."""
    x = _check_audio(samples, rate)
    nfft = 1 << (int(WIN_SECONDS * rate) - 1).bit_length()  # 512 at 16 kHz
    psf = _psf()
    if warp == 1.0 and not envelope:
        energies, _ = psf.fbank(
            x, rate, WIN_SECONDS, HOP_SECONDS, n_mels, nfft, winfunc=np.hamming
        )  # (T, n_mels), zero energies raised to machine eps
        return np.log(energies)  # (T, n_mels)
    x = psf.sigproc.preemphasis(x, 0.97)
    frames = psf.sigproc.framesig(x, WIN_SECONDS * rate, HOP_SECONDS * rate, np.hamming)
    if envelope:
        A, energy = lpc(frames)  # (T, p+1), (T,)
        power = energy[:, None] / np.abs(np.fft.rfft(A, nfft)) ** 2 / nfft  # (T, nfft//2+1)
    else:
        power = psf.sigproc.powspec(frames, nfft)  # (T, nfft//2 + 1)
    energies = power @ warped_filterbank(n_mels, nfft, rate, warp).T  # (T, n_mels)
    return np.log(np.where(energies == 0, np.finfo(float).eps, energies))  # (T, n_mels)


def mfcc(samples, rate: int = SAMPLE_RATE, n_ceps: int = 13, deltas: bool = True) -> np.ndarray:
    """MFCCs (T, n_ceps), with their first and second deltas (T, 3·n_ceps) if ``deltas``;
    26 mel filters, 25 ms windows, 10 ms hop, coefficient 0 replaced by the log energy."""
    x = _check_audio(samples, rate)
    psf = _psf()
    nfft = 1 << (int(WIN_SECONDS * rate) - 1).bit_length()
    c = psf.mfcc(
        x, rate, WIN_SECONDS, HOP_SECONDS, numcep=n_ceps, nfilt=26, nfft=nfft, winfunc=np.hamming
    )  # (T, n_ceps)
    if not deltas:
        return c  # (T, n_ceps)
    d1 = psf.delta(c, 2)  # (T, n_ceps)
    return np.concatenate([c, d1, psf.delta(d1, 2)], axis=1)  # (T, 3·n_ceps)


def normalise(features: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Per-utterance mean and variance normalisation: each column of (T, D) to mean 0, std 1."""
    f = np.asarray(features, dtype=np.float64)  # (T, D)
    return (f - f.mean(axis=0)) / (f.std(axis=0) + eps)  # (T, D)


def pcen(
    energies: np.ndarray,
    s: float = 0.025,
    alpha: float = 0.98,
    delta: float = 2.0,
    r: float = 0.5,
    eps: float = 1e-12,
) -> np.ndarray:
    """Per-channel energy normalisation (Wang et al. 2017) of filterbank energies E (T, D):

        M_t = (1 - s) M_{t-1} + s E_t,   M_0 = E_0         a smoothed energy per channel
        PCEN_t = (E_t / (ε + M_t)^α + δ)^r - δ^r            gain control, then compression

    Dividing by the smoothed energy removes a channel's level, so a voice's loudness and
    spectral tilt weigh less than its changes."""
    import scipy.signal

    E = np.asarray(energies, dtype=np.float64)  # (T, D)
    M, _ = scipy.signal.lfilter([s], [1, s - 1], E, axis=0, zi=(1 - s) * E[:1])  # (T, D)
    return (E / (eps + M) ** alpha + delta) ** r - delta**r  # (T, D)


NORMS = ("cmvn", "pcen")


def features(
    samples, kind: str = "logmel", rate: int = SAMPLE_RATE, norm: str = "cmvn", warp: float = 1.0
) -> np.ndarray:
    """The normalised features (T, D) float32 of ``samples`` (N,): "logmel" (D = 40),
    "lpcmel" (D = 40: log-mel of the LPC envelope, :func:`log_mel` ``envelope``) or "mfcc"
    with deltas (D = 39). norm "cmvn": per-utterance mean and variance normalisation
    (:func:`normalise`); "pcen" (mel kinds only): :func:`pcen` of the mel energies, then
    :func:`normalise`. ``warp`` (mel kinds only): :func:`log_mel`'s VTLP."""
    if kind not in FEATURES:
        raise BpttError(f"features must be one of {', '.join(FEATURES)}; got {kind!r}")
    if norm not in NORMS or (norm == "pcen" and kind == "mfcc"):
        raise BpttError(
            f"norm must be cmvn, or pcen with logmel or lpcmel features; got {norm!r} with {kind}"
        )
    if kind == "mfcc":
        raw = mfcc(samples, rate)  # (T, 39)
    else:
        raw = log_mel(samples, rate, warp=warp, envelope=kind == "lpcmel")  # (T, 40)
    if norm == "pcen":
        raw = pcen(np.exp(raw))  # (T, D)
    return normalise(raw).astype(np.float32)  # (T, D)


def feature_size(kind: str) -> int:
    """D of :func:`features` of that kind."""
    if kind not in FEATURES:
        raise BpttError(f"features must be one of {', '.join(FEATURES)}; got {kind!r}")
    return 39 if kind == "mfcc" else 40


DITHER_DB = 30.0  # the cleanest training clips: speech 30 dB over noise


def dither(samples, snr_db: float = DITHER_DB, pad_seconds: float = 0.25) -> np.ndarray:
    """``samples`` (N,) with ``pad_seconds`` of silence at each end, plus white noise
    ``snr_db`` below the signal's RMS (seeded: the same clip always gets the same noise):
    (N + 2·pad,) float32. A clip as clean as an engine writes it (digital zeros, log
    energies of -36) is unlike any training clip, all of which hold noise at 10..30 dB
    SNR; this puts it back in their range."""
    x = np.asarray(samples, dtype=np.float64)  # (N,)
    pad = np.zeros(int(pad_seconds * SAMPLE_RATE))
    x = np.concatenate([pad, x, pad])  # (N + 2·pad,)
    rms = max(float(np.sqrt(np.mean(x**2))), 1e-6)
    noise = np.random.default_rng(len(x)).standard_normal(len(x))  # (N + 2·pad,)
    return (x + noise * rms * 10 ** (-snr_db / 20)).astype(np.float32)


def stack_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Frames (T, D) -> steps (T // k, k·D): k consecutive frames side by side (the last
    T mod k frames dropped), so a recurrent layer takes k times fewer steps."""
    s = len(frames) // k
    return np.ascontiguousarray(frames[: s * k]).reshape(s, k * frames.shape[1])  # (S, kD)
