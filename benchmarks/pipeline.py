"""Benchmark: chords -> log-mel, the naive per-clip path against musicrl's batched path.

Both paths get the same random progressions (``midi.rand_progression``: 16
chords of one beat at 120 bpm, 8 s clips) and the same settings (sr 16 kHz,
n_fft 1024, hop 256, 128 mels):

* naive, one clip at a time, as a first script would do it:
  ``PrettyMIDI.synthesize(fs=sr)`` -> ``librosa.feature.melspectrogram`` ->
  ``librosa.power_to_db``. (pretty_midi renders a 1 s tail after the last
  note; it is cut off before the mel so both paths transform 8 s.)
* musicrl: ``midi_to_seq`` once up front (not timed), then the timed
  ``mel.seq_to_mel`` on the whole batch.

For reference it also times musicrl's batched audio path,
``synth.seq_to_wav`` -> ``mel.wav_to_mel`` (same log-mels, no note-spectra
table), which shows what batching alone gives.

All paths are warmed up first, then timed over ``--repeat`` rounds of one
pass each, interleaved; each path's best pass counts. Also printed: the largest dB difference between ``seq_to_mel``
and the float64 librosa reference (``mel.wav_to_mel_librosa``) of the
project's own audio (``synth.seq_to_wav``), over the bins within 80 dB of each
clip's peak. The last line is ``speedup: N.Nx``.

Timings are wall-clock; on a shared machine they move with other processes'
load, which is printed (1-minute load average) before and after.

Usage::

    python benchmarks/pipeline.py [--n 256] [--batch 64] [--repeat 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from musicrl.audio import mel, synth  # noqa: E402

from musicrl.music import midi, vectorize  # noqa: E402
from musicrl.config import Config  # noqa: E402


def naive_mels(rand_midis, *, sr, n_fft, hop_length, n_mels, n_samples):
    """The per-clip path: pretty_midi's synthesizer, then librosa."""
    import librosa

    out = []
    for rand_midi in rand_midis:
        rand_wav = rand_midi.synthesize(fs=sr)[:n_samples]
        power = librosa.feature.melspectrogram(
            y=rand_wav, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        out.append(librosa.power_to_db(power, ref=np.max))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="clips per timed pass (default 256)")
    parser.add_argument("--batch", type=int, default=64, help="seq_to_mel chunk size (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per path; best counts")
    parser.add_argument("--n-mels", type=int, default=128, help="mel bands (default 128)")
    parser.add_argument("--check", type=int, default=8, help="clips compared with the librosa reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = Config(n_steps=16, n_mels=args.n_mels)
    rng = np.random.default_rng(args.seed)
    rand_midis = [midi.rand_progression(rng, n_chords=cfg.n_steps, bpm=cfg.bpm) for _ in range(args.n)]
    rand_seqs = np.stack(
        [vectorize.midi_to_seq(m, n_pitches=cfg.n_pitches, **cfg.grid_kwargs())[: cfg.n_steps] for m in rand_midis]
    )
    kwargs = cfg.seq_mel_kwargs()
    naive_kwargs = dict(sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                        n_samples=cfg.n_samples)

    print(f"clips: {args.n} random progressions, {cfg.n_steps} chords, {cfg.n_samples / cfg.sr:g} s each; "
          f"sr={cfg.sr}, n_fft={cfg.n_fft}, hop={cfg.hop_length}, n_mels={cfg.n_mels}")
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")

    # warm-up: imports, caches, XLA compilation
    naive_mels(rand_midis[:2], **naive_kwargs)
    fast = mel.seq_to_mel(rand_seqs, chunk_size=args.batch, **kwargs)

    def naive_path():
        naive_mels(rand_midis, **naive_kwargs)

    def fast_path():
        mel.seq_to_mel(rand_seqs, chunk_size=args.batch, **kwargs)

    def audio_path():
        for lo in range(0, args.n, args.batch):
            rand_wavs = synth.seq_to_wav(rand_seqs[lo : lo + args.batch], **cfg.synth_kwargs())
            mel.wav_to_mel(rand_wavs, chunk_size=args.batch, **cfg.mel_kwargs())

    audio_path()
    # passes interleaved, so a change in the machine's load hits every path alike
    times = {naive_path: [], audio_path: [], fast_path: []}
    for _ in range(args.repeat):
        for path, spent in times.items():
            t0 = time.perf_counter()
            path()
            spent.append(time.perf_counter() - t0)
    t_naive, t_audio, t_fast = (min(spent) for spent in times.values())
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    worst = 0.0
    for i in range(min(args.check, args.n)):
        rand_wav = synth.seq_to_wav(rand_seqs[i], **cfg.synth_kwargs())[0]
        ref = mel.wav_to_mel_librosa(rand_wav, **cfg.mel_kwargs())
        near = ref >= ref.max() - 80.0
        worst = max(worst, float(np.abs(fast[i] - ref)[near].max()))

    naive_rate = args.n / t_naive
    fast_rate = args.n / t_fast
    print(f"naive (pretty_midi synthesize + librosa, per clip): {naive_rate:.1f} clips/s")
    print(f"musicrl seq_to_wav + wav_to_mel (batched audio path): {args.n / t_audio:.1f} clips/s")
    print(f"musicrl seq_to_mel (batched, chunk {args.batch}): {fast_rate:.1f} clips/s")
    print(f"max |seq_to_mel - librosa reference| over bins within 80 dB of peak "
          f"({min(args.check, args.n)} clips): {worst:.2g} dB")
    print(f"speedup: {fast_rate / naive_rate:.1f}x")


if __name__ == "__main__":
    main()
