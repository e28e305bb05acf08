"""``bptt synth``: speak a text into a 16 kHz WAV file, to make test audio.

bptt synth "3 1 4 1 5" --voice en-us+f2 --out pi.wav     numerals are said digit by digit
bptt synth "hey computer" --voice flite:slt --snr 20 --out a.wav
bptt synth "4 0 7 1" --voice festival:kal_diphone --out f.wav   Festival's text2wave
bptt synth --list-voices                                 every voice and its split

Parses, builds, calls; the speaking is :mod:`bptt.tasks.speech.speech_synth`'s.
"""

from __future__ import annotations

import argparse
import sys

from bptt.errors import BpttError


def add_parsers(sub) -> None:
    """Add ``synth`` to the ``bptt`` command's subparsers."""
    p = sub.add_parser(
        "synth", help="speak a text into a 16 kHz WAV file (espeak-ng, flite or Festival)"
    )
    p.add_argument(
        "text", nargs="?", help='what to say, e.g. "3 1 4 1 5" (numerals: digit by digit)'
    )
    p.add_argument(
        "--voice",
        default="en-us+m3",
        help="accent+variant of espeak-ng, e.g. en-gb-scotland+f2, flite:slt or "
        "festival:kal_diphone (default: en-us+m3; --list-voices shows them)",
    )
    p.add_argument("--rate", type=int, default=175, help="words per minute, 80..450 (default: 175)")
    p.add_argument("--pitch", type=int, default=50, help="0..99 (default: 50)")
    p.add_argument("--snr", type=float, default=None, help="add noise at this SNR in dB")
    p.add_argument(
        "--noise",
        choices=("white", "pink"),
        default="white",
        help="the colour of the --snr noise (default: white)",
    )
    p.add_argument(
        "--by-word",
        action="store_true",
        help="say each word alone, joined by random gaps; print each word's span",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and gaps (default: 0)")
    p.add_argument("--out", default="synth.wav", help="the WAV file to write (default: synth.wav)")
    p.add_argument("--list-voices", action="store_true", help="list the voices and their split")


def synth(args: argparse.Namespace) -> int:
    from bptt.data.audio import SAMPLE_RATE, write_wav
    from bptt.tasks.speech import speech_synth, speech_voices
    from bptt.tasks.speech.speech_engines import OWN_PITCH

    if args.list_voices:
        for split in speech_voices.SPLITS:
            names = [v.name for v in speech_voices.voices(split, speech_voices.installed_engines())]
            print(f"{split} ({len(names)}): {' '.join(names)}")
        return 0
    if not args.text:
        raise BpttError('synth needs a text to say, e.g. bptt synth "3 1 4" --out pi.wav')
    voice = speech_voices.parse_voice(args.voice)
    text = speech_synth.digits_to_words(args.text)
    spec = speech_synth.ClipSpec(
        text, voice.name, args.rate, args.pitch, args.snr, args.noise, args.seed, args.by_word
    )
    samples, words = speech_synth.render(spec)
    path = write_wav(args.out, samples)
    print(
        f"wrote {path}: {len(samples) / SAMPLE_RATE:.2f} s, {SAMPLE_RATE} Hz mono, voice "
        f"{voice.name} ({voice.split} split), {text!r}"
    )
    for word, start, end in words:
        print(f"{word}\t{start / SAMPLE_RATE:.3f}\t{end / SAMPLE_RATE:.3f}")
    if voice.name in OWN_PITCH and args.pitch != 50:
        print(f"note: {voice.name} speaks at its own pitch; --pitch {args.pitch} changed nothing",
              file=sys.stderr)  # fmt: skip
    return 0
