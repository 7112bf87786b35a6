"""Tests of musicrl.music.metrics and of the set comparisons in musicrl.evaluation (mgeval, two_sample)."""

import dataclasses
import itertools

import numpy as np
import pytest

from musicrl.evaluation import compare, mgeval, two_sample

from musicrl.music import metrics
from musicrl.errors import MusicRLError

C, E, F, G, A, B = 60, 64, 65, 67, 69, 71
C_MAJOR = [C, E, G]
F_MAJOR = [C, F, A]
G_MAJOR = [B - 12, 62, G]  # B3 D4 G4
CLUSTER = [C, C + 1, C + 2]


def seqs_from_chords(pieces, *, lowest_pitch=36, n_pitches=48):
    """Multi-hot batch from lists of MIDI chords ([] is a rest); pieces must have equal length."""
    out = np.zeros((len(pieces), len(pieces[0]), n_pitches), dtype=np.float32)
    for i, piece in enumerate(pieces):
        for t, chord in enumerate(piece):
            for p in chord:
                out[i, t, p - lowest_pitch] = 1.0
    return out


def diatonic_seqs(rng, n, n_steps=16, tonic=0, lowest_pitch=36, n_pitches=48):
    """Random root-position triads of a major key, roots in C3..B3."""
    scale = [0, 2, 4, 5, 7, 9, 11]
    out = np.zeros((n, n_steps, n_pitches), dtype=np.float32)
    for i in range(n):
        for t in range(n_steps):
            degree = rng.integers(0, 6)  # I..vi
            root = 48 + (tonic + scale[degree]) % 12
            for k in (0, 2, 4):
                step = scale[(degree + k) % 7] - scale[degree]
                out[i, t, root + step % 12 - lowest_pitch] = 1.0
    return out


def noise_seqs(rng, n, n_steps=16, n_pitches=48):
    """Three random pitches per step anywhere in the range."""
    out = np.zeros((n, n_steps, n_pitches), dtype=np.float32)
    for i in range(n):
        for t in range(n_steps):
            out[i, t, rng.choice(n_pitches, 3, replace=False)] = 1.0
    return out


# --------------------------------------------------------------------------
# pitch content


@pytest.mark.parametrize("lowest_pitch,n_pitches", [(36, 48), (21, 88)])
def test_pitch_class_entropy_of_hand_built_pieces(lowest_pitch, n_pitches):
    pieces = [
        [[C], [C + 12], [C - 12], [C]],           # one pitch class in three octaves: 0 bits
        [C_MAJOR] * 4,                            # three classes equally: log2(3)
        [[60, 61, 62, 63, 64, 65], [66, 67, 68, 69, 70, 71]] * 2,  # all twelve equally: log2(12)
        [[C, G], [C], [C], [C]],                  # 4 C against 1 G
        [[], [], [], []],                         # nothing to measure
    ]
    got = metrics.pitch_class_entropy(seqs_from_chords(pieces, lowest_pitch=lowest_pitch, n_pitches=n_pitches),
                                      lowest_pitch=lowest_pitch)
    p = np.array([0.8, 0.2])
    want = [0.0, np.log2(3), np.log2(12), float(-(p * np.log2(p)).sum()), np.nan]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_pitch_class_entropy_in_summarize_and_its_interval(rng):
    seqs = diatonic_seqs(rng, 24)
    row = metrics.summarize(seqs)
    assert row["pitch_class_entropy"] == pytest.approx(np.nanmean(metrics.pitch_class_entropy(seqs)), abs=1e-12)
    low, high = compare.set_measure_intervals(seqs, None, lowest_pitch=36, n_resamples=200, rng=rng)[
        "pitch_class_entropy"]
    assert low < row["pitch_class_entropy"] < high
    # random notes over all twelve classes are more spread than triads of one key
    assert metrics.summarize(noise_seqs(rng, 24))["pitch_class_entropy"] > row["pitch_class_entropy"]


@pytest.mark.parametrize("lowest_pitch,n_pitches", [(36, 48), (21, 88), (48, 36), (0, 128)])
def test_pitch_class_histogram_of_a_triad(lowest_pitch, n_pitches):
    seqs = seqs_from_chords([[C_MAJOR] * 4], lowest_pitch=lowest_pitch, n_pitches=n_pitches)
    hist = metrics.pitch_class_histogram(seqs, lowest_pitch=lowest_pitch)
    want = np.zeros(12)
    want[[0, 4, 7]] = 1 / 3
    assert hist.shape == (1, 12)
    np.testing.assert_allclose(hist[0], want, atol=1e-12)
    # a single 2-D seq is a batch of one
    np.testing.assert_allclose(metrics.pitch_class_histogram(seqs[0], lowest_pitch=lowest_pitch), hist)


def test_pitch_class_histogram_pooled_weighs_notes_and_duration():
    seqs = seqs_from_chords([[[C], [C], [C]], [[E], [], []]])
    per_piece = metrics.pitch_class_histogram(seqs)
    pooled = metrics.pitch_class_histogram(seqs, pooled=True)
    assert per_piece[0, 0] == 1.0 and per_piece[1, 4] == 1.0
    np.testing.assert_allclose(pooled[[0, 4]], [0.75, 0.25])
    assert pooled.sum() == pytest.approx(1.0)
    empty = metrics.pitch_class_histogram(np.zeros((2, 3, 48)))
    assert np.all(empty == 0)


def test_pitches_used_and_range():
    seqs = seqs_from_chords([[C_MAJOR, [C + 12], []], [[], [], []], [[C], [C], [C]]])
    np.testing.assert_array_equal(metrics.n_pitches_used(seqs), [4, 0, 1])
    np.testing.assert_array_equal(metrics.pitch_range(seqs), [12.0, np.nan, 0.0])


@pytest.mark.parametrize("lowest_pitch", [36, 43])
def test_used_pitch_classes_per_bar(lowest_pitch):
    c7 = [C, E, G, 70]
    seqs = seqs_from_chords([[C_MAJOR, C_MAJOR, c7, c7, [], []]], lowest_pitch=lowest_pitch)
    kw = {"lowest_pitch": lowest_pitch}
    assert metrics.used_pitch_classes(seqs, **kw)[0] == 4.0
    assert metrics.used_pitch_classes(seqs, steps_per_bar=2, **kw)[0] == pytest.approx((3 + 4 + 0) / 3)
    # a shorter last bar is a bar of its own
    assert metrics.used_pitch_classes(seqs, steps_per_bar=4, **kw)[0] == pytest.approx((4 + 0) / 2)


def test_polyphony_and_empty_steps():
    seqs = seqs_from_chords([[C_MAJOR, [], [C, E, G, B]], [[], [], []]])
    np.testing.assert_array_equal(metrics.polyphony(seqs), [3.5, np.nan])
    assert metrics.polyphony(seqs, pooled=True) == pytest.approx(3.5)
    np.testing.assert_allclose(metrics.empty_step_rate(seqs), [1 / 3, 1.0])
    assert metrics.empty_step_rate(seqs, pooled=True) == pytest.approx(4 / 6)


def test_qualified_note_rate_counts_runs():
    # C held over steps 0-2 (one note of 3 steps), E on steps 0 and 2 (two 1-step notes), G at the end
    seqs = seqs_from_chords([[[C, E], [C], [C, E], [G]]])
    assert metrics.qualified_note_rate(seqs)[0] == pytest.approx(1 / 4)
    assert metrics.qualified_note_rate(seqs, min_steps=1)[0] == 1.0
    assert metrics.qualified_note_rate(seqs, min_steps=3)[0] == pytest.approx(1 / 4)
    assert metrics.qualified_note_rate(seqs, min_steps=4)[0] == 0.0
    # a run cut by the end of the piece counts only as far as it goes
    held_to_end = seqs_from_chords([[[], [C], [C]]])
    assert metrics.qualified_note_rate(held_to_end, min_steps=2)[0] == 1.0
    assert metrics.qualified_note_rate(held_to_end, min_steps=3)[0] == 0.0
    assert np.isnan(metrics.qualified_note_rate(np.zeros((1, 3, 48)))[0])


def test_top_pitch_share():
    # counts: C 4, E 3, G 2, B 1 -> top-3 share 9 / 10
    piece = [[C, E, G, B], [C, E, G], [C, E], [C]]
    seqs = seqs_from_chords([piece, [[C]] * 4])
    np.testing.assert_allclose(metrics.top_pitch_share(seqs), [0.9, 1.0])
    assert metrics.top_pitch_share(seqs, pooled=True) == pytest.approx((8 + 3 + 2) / 14)
    assert metrics.top_pitch_share(seqs, k=1)[0] == pytest.approx(0.4)


def test_histogram_overlap():
    a = np.array([1.0, 1.0, 0.0, 0.0])
    assert metrics.histogram_overlap(a, 3 * a) == pytest.approx(1.0)
    assert metrics.histogram_overlap(a, a[::-1]) == 0.0
    assert metrics.histogram_overlap(a, [1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.5)
    assert np.isnan(metrics.histogram_overlap(a, np.zeros(4)))
    np.testing.assert_allclose(metrics.histogram_overlap(np.stack([a, a[::-1]]), a), [1.0, 0.0])
    with pytest.raises(MusicRLError, match="non-negative"):
        metrics.histogram_overlap(-a, a)
    with pytest.raises(MusicRLError, match="same number of bins"):
        metrics.histogram_overlap(a, np.ones(12))


def test_pitch_class_overlap_ignores_octave_and_shape():
    seqs = seqs_from_chords([[C_MAJOR] * 4])
    ref_same = seqs_from_chords([[[p + 12 for p in C_MAJOR]] * 6], n_pitches=60)
    ref_far = seqs_from_chords([[[61, 63, 66]] * 2])
    assert metrics.pitch_class_overlap(seqs, ref_same) == pytest.approx(1.0)
    assert metrics.pitch_class_overlap(seqs, ref_far) == 0.0


# --------------------------------------------------------------------------
# key


def test_key_profiles_are_music21s():
    from music21.analysis.discrete import KrumhanslSchmuckler

    ks = KrumhanslSchmuckler()
    np.testing.assert_allclose(metrics.KRUMHANSL_MAJOR, ks.getWeights("major"))
    np.testing.assert_allclose(metrics.KRUMHANSL_MINOR, ks.getWeights("minor"))


@pytest.mark.parametrize("shift", [0, 2, 7, 11])
def test_estimate_key_follows_transposition(shift):
    piece = [C_MAJOR, F_MAJOR, G_MAJOR, C_MAJOR]
    seqs = seqs_from_chords([[[p + shift for p in ch] for ch in piece]])
    tonic, is_minor, corr = metrics.estimate_key(seqs)
    assert tonic[0] == shift % 12 and not is_minor[0]
    assert 0.5 < corr[0] <= 1.0


def test_estimate_key_minor_and_undefined():
    a_minor = [[A - 12, C, E], [62, F, A], [64 - 12, 68, B], [A - 12, C, E]]  # i iv V i in A minor
    flat = [list(range(C, C + 12))]
    seqs = seqs_from_chords([a_minor, flat * 4, [[]] * 4])
    tonic, is_minor, corr = metrics.estimate_key(seqs)
    assert (tonic[0], bool(is_minor[0])) == (9, True)
    assert (tonic[1], bool(is_minor[1]), corr[1]) == (0, False, 0.0)
    assert tonic[2] == -1 and not is_minor[2] and np.isnan(corr[2])


def _music21_key(seq, lowest_pitch):
    from music21 import chord, stream

    s = stream.Stream()
    for t, row in enumerate(seq):
        pitches = [lowest_pitch + int(p) for p in np.flatnonzero(row)]
        if pitches:
            s.insert(float(t), chord.Chord(pitches, quarterLength=1.0))
    k = s.analyze("key.krumhansl")
    return k.tonic.pitchClass, k.mode == "minor"


def test_estimate_key_agrees_with_music21(rng):
    pieces = [diatonic_seqs(rng, 1, n_steps=12, tonic=t)[0] for t in (0, 3, 8)]
    pieces += list(noise_seqs(rng, 3, n_steps=12))
    seqs = np.stack(pieces)
    tonic, is_minor, _ = metrics.estimate_key(seqs, lowest_pitch=36)
    for i, seq in enumerate(seqs):
        assert (tonic[i], bool(is_minor[i])) == _music21_key(seq, 36), f"piece {i}"


# --------------------------------------------------------------------------
# chords


def test_in_key_rate():
    seqs = seqs_from_chords([[C_MAJOR] * 4])
    assert metrics.in_key_rate(seqs)[0] == 1.0
    # one F# among 8 notes, measured in C major
    with_fsharp = seqs_from_chords([[C_MAJOR, [C, 66], C_MAJOR]])
    assert metrics.in_key_rate(with_fsharp, key=(0, False))[0] == pytest.approx(7 / 8)
    # G# is out of natural A minor, in harmonic A minor
    gsharp = seqs_from_chords([[[A - 12, C, E], [64 - 12, 68, B]]])
    assert metrics.in_key_rate(gsharp, key=(9, True))[0] == pytest.approx(5 / 6)
    assert metrics.in_key_rate(gsharp, key=(9, True), minor_scale="harmonic")[0] == 1.0
    assert np.isnan(metrics.in_key_rate(np.zeros((1, 2, 48)))[0])
    with pytest.raises(MusicRLError, match="key must be"):
        metrics.in_key_rate(seqs, key=(12, False))
    with pytest.raises(MusicRLError, match="minor_scale"):
        metrics.in_key_rate(seqs, minor_scale="dorian")


def test_in_key_rate_per_step_is_each_step_against_the_pieces_key(rng):
    # C major with an F# at step 1, and a rest at step 2
    seqs = seqs_from_chords([[C_MAJOR, [C, 66], [], C_MAJOR], [C_MAJOR, C_MAJOR, C_MAJOR, [C, 61, G]]])
    got = metrics.in_key_rate(seqs, key=(0, False), per_step=True)
    want = np.array([[1, 1 / 2, np.nan, 1], [1, 1, 1, 2 / 3]])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(metrics.in_key_rate(seqs, key=(0, False), per_step=True, pooled=True),
                               [1, 4 / 5, 1, 5 / 6], atol=1e-12)
    # the steps' notes add up to the piece's rate, each piece in its own estimated key
    pieces = (rng.random((6, 8, 48)) < 0.08).astype(np.float32)
    per_step = metrics.in_key_rate(pieces, per_step=True)
    on = pieces.sum(axis=-1)
    np.testing.assert_allclose(np.nansum(per_step * on, axis=1) / on.sum(axis=1), metrics.in_key_rate(pieces),
                               atol=1e-12)


QUALITY_EXAMPLES = {
    "major": [C, E, G], "minor": [C, 63, G], "diminished": [C, 63, 66], "augmented": [C, E, 68],
    "major7": [C, E, G, B], "dominant7": [C, E, G, 70], "minor7": [C, 63, G, 70],
    "half-diminished7": [C, 63, 66, 70], "diminished7": [C, 63, 66, A],
}


@pytest.mark.parametrize("quality", metrics.CHORD_QUALITIES)
@pytest.mark.parametrize("lowest_pitch", [36, 40])
def test_chord_qualities_on_every_root_voicing_and_doubling(quality, lowest_pitch):
    base = QUALITY_EXAMPLES[quality]
    chords = []
    for root in range(12):
        notes = [p + root for p in base]
        chords.append(notes)
        chords.append(sorted(notes[1:] + [notes[0] + 12]))  # first inversion
        chords.append(notes + [notes[0] - 12])  # doubled root
    seqs = seqs_from_chords([chords], lowest_pitch=lowest_pitch, n_pitches=60)
    codes = metrics.chord_qualities(seqs, lowest_pitch=lowest_pitch)
    assert np.all(codes == metrics.CHORD_QUALITIES.index(quality))


def test_chord_qualities_reject_dyads_clusters_and_incomplete_chords():
    seqs = seqs_from_chords([[CLUSTER, [C, E], [C, E, 70], [C, E, G, A + 1, 74], [], [C]]])
    assert np.all(metrics.chord_qualities(seqs) == -1)


def test_chord_quality_table_is_unambiguous():
    # 7 qualities have 12 transpositions; augmented has 4 and diminished-7 has 3
    codes = metrics.chord_qualities(
        seqs_from_chords([[[C + i for i in range(12) if (m >> i) & 1] for m in range(4096)]], n_pitches=48)
    )
    assert (codes >= 0).sum() == 7 * 12 + 4 + 3


def test_consonant_chord_rate():
    seqs = seqs_from_chords([[C_MAJOR] * 4, [CLUSTER] * 4, [C_MAJOR, [], CLUSTER, [C, E]], [[]] * 4])
    np.testing.assert_array_equal(metrics.consonant_chord_rate(seqs), [1.0, 0.0, 1 / 3, np.nan])
    assert metrics.consonant_chord_rate(seqs, pooled=True) == pytest.approx(5 / 11)


def test_repetition_rate():
    seqs = seqs_from_chords([[C_MAJOR, C_MAJOR, F_MAJOR, F_MAJOR], [[], [], C_MAJOR, G_MAJOR]])
    np.testing.assert_allclose(metrics.repetition_rate(seqs), [2 / 3, 1 / 3])
    assert metrics.repetition_rate(seqs, pooled=True) == pytest.approx(3 / 6)
    assert np.isnan(metrics.repetition_rate(seqs[:, :1])[0])
    # voicing matters: an inversion is a different step
    inv = seqs_from_chords([[C_MAJOR, [E, G, C + 12]]])
    assert metrics.repetition_rate(inv)[0] == 0.0


def test_distinct_chord_ratio_and_distinct_chords():
    seqs = seqs_from_chords([[C_MAJOR, C_MAJOR, F_MAJOR, G_MAJOR], [C_MAJOR, [], [], C_MAJOR]])
    np.testing.assert_allclose(metrics.distinct_chord_ratio(seqs), [3 / 4, 2 / 4])
    assert metrics.distinct_chord_ratio(seqs, pooled=True) == pytest.approx(4 / 8)
    assert metrics.distinct_chords(seqs) == 3
    # a stray B2 (1 of 49 notes; every other pitch has >= 4) makes one more chord
    # unless rare pitches are dropped
    stray = seqs_from_chords([[C_MAJOR, F_MAJOR, G_MAJOR, C_MAJOR]] * 4)
    stray[0, 3, 47 - 36] = 1.0
    assert metrics.distinct_chords(stray) == 4
    assert metrics.distinct_chords(stray, min_share=0.05) == 3
    assert metrics.distinct_chords(np.zeros((1, 2, 48))) == 0
    with pytest.raises(MusicRLError, match="min_share"):
        metrics.distinct_chords(seqs, min_share=1.5)


# --------------------------------------------------------------------------
# voice leading and tonal distance


def test_voice_leading_cost_examples():
    assert metrics.voice_leading_cost(C_MAJOR, F_MAJOR) == 3.0
    assert metrics.voice_leading_cost(F_MAJOR, C_MAJOR) == 3.0
    assert metrics.voice_leading_cost(C_MAJOR, C_MAJOR) == 0.0
    # a voice splits: G goes to G and to Bb
    assert metrics.voice_leading_cost(C_MAJOR, C_MAJOR + [70]) == 3.0
    # two voices merge on one note
    assert metrics.voice_leading_cost([C, 62], [61]) == 2.0
    with pytest.raises(MusicRLError, match="non-empty"):
        metrics.voice_leading_cost([], C_MAJOR)


def _brute_force_cost(a, b):
    """Least total movement over every set of voices using every note of both chords."""
    if len(a) == len(b):
        return min(sum(abs(x - y) for x, y in zip(a, perm)) for perm in itertools.permutations(b))
    edges = [(i, j) for i in range(len(a)) for j in range(len(b))]
    best = np.inf
    for mask in range(1, 1 << len(edges)):
        chosen = [e for k, e in enumerate(edges) if (mask >> k) & 1]
        if {i for i, _ in chosen} == set(range(len(a))) and {j for _, j in chosen} == set(range(len(b))):
            best = min(best, sum(abs(a[i] - b[j]) for i, j in chosen))
    return best


@pytest.mark.parametrize("sizes", [(1, 3), (2, 3), (3, 2), (3, 3), (4, 2), (2, 4)])
def test_voice_leading_cost_is_optimal(rng, sizes):
    for _ in range(5):
        a = sorted(rng.choice(np.arange(48, 72), sizes[0], replace=False).tolist())
        b = sorted(rng.choice(np.arange(48, 72), sizes[1], replace=False).tolist())
        assert metrics.voice_leading_cost(a, b) == pytest.approx(_brute_force_cost(a, b))
        assert metrics.voice_leading_cost(a, b) == pytest.approx(metrics.voice_leading_cost(b, a))


def test_voice_leading_distance_skips_rests():
    seqs = seqs_from_chords([[C_MAJOR, [], F_MAJOR, F_MAJOR], [C_MAJOR, [], [], []]])
    # changes: C->F (3 semitones, 3 voices) and F->F (0)
    np.testing.assert_allclose(metrics.voice_leading_distance(seqs), [0.5, np.nan])
    np.testing.assert_allclose(metrics.voice_leading_distance(seqs, per_voice=False), [1.5, np.nan])
    assert metrics.voice_leading_distance(seqs, pooled=True) == pytest.approx(0.5)
    # unequal sizes are divided by the larger chord
    grow = seqs_from_chords([[C_MAJOR, C_MAJOR + [70]]])
    assert metrics.voice_leading_distance(grow)[0] == pytest.approx(3 / 4)


def test_tonal_centroid_of_a_triad_is_harte_s():
    cent = metrics.tonal_centroids(seqs_from_chords([[C_MAJOR, []]]))[0]
    pcs = np.array([0, 4, 7])
    want = np.concatenate(
        [
            [np.sin(pcs * 7 * np.pi / 6).mean(), np.cos(pcs * 7 * np.pi / 6).mean()],
            [np.sin(pcs * 3 * np.pi / 2).mean(), np.cos(pcs * 3 * np.pi / 2).mean()],
            [0.5 * np.sin(pcs * 2 * np.pi / 3).mean(), 0.5 * np.cos(pcs * 2 * np.pi / 3).mean()],
        ]
    )
    np.testing.assert_allclose(cent[0], want, atol=1e-12)
    np.testing.assert_array_equal(cent[1], 0.0)


@pytest.mark.parametrize("lowest_pitch", [36, 24])
def test_tonal_distance(lowest_pitch):
    kw = {"lowest_pitch": lowest_pitch}
    build = {"lowest_pitch": lowest_pitch, "n_pitches": 60}
    same = seqs_from_chords([[C_MAJOR, C_MAJOR, [C + 12, E, G]]], **build)
    assert metrics.tonal_distance(same, **kw)[0] == pytest.approx(0.0, abs=1e-12)
    fwd = seqs_from_chords([[C_MAJOR, F_MAJOR, G_MAJOR]], **build)
    back = fwd[:, ::-1]
    d = metrics.tonal_distance(fwd, **kw)[0]
    assert d > 0.1
    assert metrics.tonal_distance(back, **kw)[0] == pytest.approx(d)
    up = seqs_from_chords([[[p + 5 for p in ch] for ch in [C_MAJOR, F_MAJOR, G_MAJOR]]], **build)
    assert metrics.tonal_distance(up, **kw)[0] == pytest.approx(d)
    assert np.isnan(metrics.tonal_distance(seqs_from_chords([[C_MAJOR, []]], **build), **kw)[0])


# --------------------------------------------------------------------------
# copying and summary


def test_copies_finds_verbatim_runs(rng):
    train = diatonic_seqs(rng, 3, n_steps=20)
    gen = noise_seqs(rng, 4, n_steps=12)
    gen[1, 2:10] = train[2, 5:13]  # an 8-step copy
    gen[2, 0:7] = train[0, 0:7]  # only 7 steps
    gen[3, 4:12] = np.roll(train[1, 0:8], 2, axis=-1)  # transposed by 2 semitones
    np.testing.assert_array_equal(metrics.copies(gen, train), [False, True, False, False])
    assert metrics.copy_rate(gen, train) == pytest.approx(0.25)
    assert metrics.copy_rate(gen, train, run_length=7) == pytest.approx(0.5)
    # training pieces of different lengths as a list; ones shorter than a run hold none
    assert metrics.copy_rate(gen, [train[2], train[0, :5]]) == pytest.approx(0.25)


def test_copies_ignores_silence_and_checks_lengths():
    silent = np.zeros((2, 8, 48), dtype=np.float32)
    assert metrics.copy_rate(silent, np.zeros((1, 10, 48))) == 0.0
    with pytest.raises(MusicRLError, match="fewer than run_length"):
        metrics.copies(silent[:, :4], silent)
    with pytest.raises(MusicRLError, match="pitch columns"):
        metrics.copies(silent, [np.zeros((8, 60))])
    with pytest.raises(MusicRLError, match=r"train_seqs\[0\] must be one seq"):
        metrics.copies(silent, [np.zeros((1, 8, 48))])


def test_summarize_of_a_triad_piece():
    seqs = seqs_from_chords([[C_MAJOR, C_MAJOR, F_MAJOR, G_MAJOR]])
    out = metrics.summarize(seqs, lowest_pitch=36, reference_seqs=seqs)
    assert all(isinstance(v, float) for v in out.values())
    assert out["in_key_rate"] == 1.0 and out["consonant_chord_rate"] == 1.0
    assert out["polyphony"] == 3.0 and out["empty_step_rate"] == 0.0
    assert out["repetition_rate"] == pytest.approx(1 / 3)
    assert out["distinct_chord_ratio"] == pytest.approx(3 / 4)
    assert out["distinct_chords_common"] == 3.0
    assert out["pitch_class_overlap"] == pytest.approx(1.0)
    assert out["scale_degree_overlap"] == pytest.approx(1.0)
    assert out["voice_leading"] == pytest.approx(metrics.voice_leading_distance(seqs)[0])
    assert "pitch_class_overlap" not in metrics.summarize(seqs)
    assert "scale_degree_overlap" not in metrics.summarize(seqs)


def test_summarize_of_silence_is_nan_not_an_error():
    out = metrics.summarize(np.zeros((3, 4, 48)))
    assert out["empty_step_rate"] == 1.0 and out["repetition_rate"] == 1.0
    for key in ("polyphony", "in_key_rate", "consonant_chord_rate", "voice_leading", "tonal_distance"):
        assert np.isnan(out[key]), key


BAD_SEQS = [
    (np.zeros((2, 3)) + np.nan, "NaN"),
    (np.full((1, 4, 48), 0.5), "multi-hot"),
    (np.zeros((1, 1, 4, 48)), "shape"),
    (np.zeros((0, 4, 48)), "at least one seq"),
]


@pytest.mark.parametrize("fn", [
    metrics.pitch_class_histogram, metrics.scale_degree_histogram, metrics.n_pitches_used, metrics.polyphony,
    metrics.consonant_chord_rate, metrics.voice_leading_distance, metrics.tonal_distance,
    metrics.repetition_rate, metrics.distinct_chord_ratio, metrics.summarize,
])
@pytest.mark.parametrize("seqs,match", BAD_SEQS)
def test_bad_seqs_raise(fn, seqs, match):
    with pytest.raises(MusicRLError, match=match):
        fn(seqs)


@pytest.mark.parametrize("fn", [
    metrics.pitch_class_histogram, metrics.scale_degree_histogram, metrics.estimate_key, metrics.chord_qualities,
    metrics.in_key_rate, metrics.tonal_distance, metrics.summarize,
])
@pytest.mark.parametrize("lowest_pitch", [-1, 81, 36.0, True])
def test_bad_lowest_pitch_raises(fn, lowest_pitch):
    with pytest.raises(MusicRLError, match="lowest_pitch"):
        fn(np.zeros((1, 4, 48)), lowest_pitch=lowest_pitch)


def test_bad_options_raise():
    seqs = np.zeros((1, 4, 48))
    with pytest.raises(MusicRLError, match="pooled"):
        metrics.polyphony(seqs, pooled="yes")
    with pytest.raises(MusicRLError, match="min_steps"):
        metrics.qualified_note_rate(seqs, min_steps=0)
    with pytest.raises(MusicRLError, match="steps_per_bar"):
        metrics.used_pitch_classes(seqs, steps_per_bar=0)
    with pytest.raises(MusicRLError, match="run_length"):
        metrics.copy_rate(seqs, seqs, run_length=0)


# --------------------------------------------------------------------------
# set comparison (musicrl.evaluation.mgeval and two_sample)


def test_intra_and_inter_set_distances():
    x = np.array([0.0, 1.0, 3.0, np.nan])
    np.testing.assert_allclose(np.sort(mgeval.intra_set_distances(x)), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.sort(mgeval.inter_set_distances(x, [10.0])), [7.0, 9.0, 10.0])
    vec = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(mgeval.intra_set_distances(vec), [5.0])
    assert mgeval.intra_set_distances(np.arange(100.0), max_pairs=50, seed=0).shape == (50,)
    drawn = mgeval.inter_set_distances(np.arange(100.0), np.arange(100.0), max_pairs=70, seed=0)
    assert drawn.shape == (70,) and drawn.min() >= 0
    assert mgeval.intra_set_distances([1.0]).size == 0
    with pytest.raises(MusicRLError, match="differ in size"):
        mgeval.inter_set_distances(vec, x)


def test_kde_overlap_of_identical_and_disjoint_samples(rng):
    a = rng.normal(size=300)
    same = mgeval.kde_compare(a, a.copy())
    assert same.overlap == pytest.approx(1.0, abs=1e-3)
    assert same.kl == pytest.approx(0.0, abs=1e-9)
    apart = mgeval.kde_compare(a, a + 50.0)
    assert apart.overlap < 1e-3
    assert apart.kl > 5.0 and np.isfinite(apart.kl)


@pytest.mark.parametrize("n_a,n_b", [(2, 50), (40, 40), (3000, 2500)])
def test_kde_kl_is_non_negative_and_overlap_in_unit_interval(rng, n_a, n_b):
    for shift in (0.0, 0.3, 2.0):
        res = mgeval.kde_compare(rng.gamma(2.0, size=n_a), rng.gamma(2.0, size=n_b) + shift)
        assert res.kl >= 0.0
        assert 0.0 <= res.overlap <= 1.0


def test_large_samples_match_exact_kde(rng):
    # above the work limit the KDE is binned: it must agree with scipy's point-by-point values
    a, b = rng.gamma(2.0, size=3000), rng.gamma(2.5, size=2000)
    binned = mgeval.kde_compare(a, b)
    exact = mgeval.kde_compare(a[:700], b[:700])
    assert binned.overlap == pytest.approx(exact.overlap, abs=0.06)
    from scipy.stats import gaussian_kde

    grid = np.linspace(-1.0, 15.0, 4096)
    np.testing.assert_allclose(
        mgeval._binned_kde(a, grid, float(np.sqrt(gaussian_kde(a).covariance[0, 0]))),
        gaussian_kde(a)(grid),
        atol=1e-4,
    )


def test_kde_of_degenerate_samples(rng):
    zeros = mgeval.kde_compare(np.zeros(5), np.zeros(9))
    assert zeros.kl == pytest.approx(0.0, abs=1e-9) and zeros.overlap == pytest.approx(1.0, abs=1e-3)
    apart = mgeval.kde_compare(np.zeros(5), np.ones(3))
    assert apart.overlap < 1e-3
    mixed = mgeval.kde_compare(np.zeros(4), rng.normal(size=50))
    assert np.isfinite(mixed.kl) and 0.0 < mixed.overlap < 1.0
    single = mgeval.kde_compare([1.0], [1.0, 2.0])
    assert np.isfinite(single.kl) and np.isfinite(single.overlap)
    empty = mgeval.kde_compare([], [1.0, 2.0])
    assert np.isnan(empty.kl) and np.isnan(empty.overlap)
    with pytest.raises(MusicRLError, match="1-D"):
        mgeval.kde_compare(np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(MusicRLError, match="n_grid"):
        mgeval.kde_compare(np.zeros(3), np.zeros(3), n_grid=4)


MG_FEATURES = ["consonant_chord_rate", "in_key_rate", "polyphony", "pitch_class_histogram"]


def test_mgeval_compare_tells_alike_from_different_sets(rng):
    real = diatonic_seqs(rng, 40)
    alike = diatonic_seqs(rng, 40)
    noise = noise_seqs(rng, 40)
    same = mgeval.mgeval_compare(alike, real, features=MG_FEATURES, seed=1)
    diff = mgeval.mgeval_compare(noise, real, features=MG_FEATURES, seed=1)
    assert set(same) == set(MG_FEATURES)
    for name in ("in_key_rate", "pitch_class_histogram"):
        assert same[name]["oa_real_inter"] > 0.8, name
        assert diff[name]["oa_real_inter"] < 0.2, name
        assert diff[name]["kl_real_inter"] > same[name]["kl_real_inter"] >= 0.0, name
    # every real chord is a triad: all distances 0, a degenerate sample handled without error
    assert same["consonant_chord_rate"]["oa_real_inter"] == pytest.approx(1.0, abs=1e-3)
    assert same["consonant_chord_rate"]["real_mean"] == 1.0
    assert "real_mean" not in same["pitch_class_histogram"]
    with pytest.raises(MusicRLError, match="unknown features"):
        mgeval.mgeval_compare(noise, real, features=["loudness"])


def test_seq_feature_vectors_shape():
    seqs = seqs_from_chords([[C_MAJOR, [], CLUSTER, [C, E]]])
    x = two_sample.seq_feature_vectors(seqs)
    n_scalar = sum(1 for n in mgeval.PIECE_FEATURES if not n.endswith("histogram"))
    assert x.shape == (1, 48 + 12 + 11 + n_scalar)
    np.testing.assert_allclose(x[0, 48 + 12 : 48 + 23].sum(), 1.0)


def test_two_sample_test_on_alike_and_different_sets(rng):
    real = diatonic_seqs(rng, 80)
    alike = diatonic_seqs(rng, 80)
    noise = noise_seqs(rng, 60)
    same = two_sample.seq_two_sample_test(real, alike, seed=0)
    assert abs(same["accuracy"] - 0.5) <= 0.15
    diff = two_sample.seq_two_sample_test(real, noise, seed=0)
    assert diff["accuracy"] >= 0.95
    assert diff["n_per_class"] == 60.0
    boost = two_sample.seq_two_sample_test(real[:30], noise[:30], model="boosting", n_splits=3, seed=0)
    assert boost["accuracy"] >= 0.9


def test_two_sample_test_bad_input():
    x = np.zeros((10, 4))
    with pytest.raises(MusicRLError, match="at least 5 clips"):
        two_sample.classifier_two_sample_test(x[:3], x)
    with pytest.raises(MusicRLError, match="model"):
        two_sample.classifier_two_sample_test(x, x, model="svm")
    with pytest.raises(MusicRLError, match="same d"):
        two_sample.classifier_two_sample_test(x, np.zeros((10, 5)))


@pytest.fixture
def band_mels(rng):
    """A small-D config and a maker of noise mels with one loud band: (cfg, band_mels(n, band))."""
    from musicrl.config import Config

    cfg = Config(n_steps=2, d_arch="cnn", d_channels=4)

    def make(n, band):
        x = rng.normal(-70.0, 3.0, size=(n, cfg.n_frames, cfg.n_mels))
        x[:, :, band : band + 4] = -10.0
        return np.clip(x, -cfg.top_db, 0.0).astype(np.float32)

    return cfg, make


def test_discriminator_two_sample_test_on_mels(band_mels):
    cfg, band_mels = band_mels
    real_mels, gen_mels = band_mels(16, 10), band_mels(16, 40)
    res = two_sample.discriminator_two_sample_test(
        real_mels, gen_mels, cfg, n_splits=2, epochs=6, batch_size=4, seed=0, learning_rate=5e-3
    )
    assert res["accuracy"] >= 0.9 and res["n_per_class"] == 16.0
    with pytest.raises(MusicRLError, match="learning_rate must be > 0"):
        two_sample.discriminator_two_sample_test(real_mels, gen_mels, cfg, learning_rate=0.0)
    with pytest.raises(MusicRLError, match=r"beta_1 must be in \[0, 1\)"):
        two_sample.discriminator_two_sample_test(real_mels, gen_mels, cfg, beta_1=1.0)
    with pytest.raises(MusicRLError, match="real_x must have shape"):
        two_sample.discriminator_two_sample_test(real_mels[:, :10], gen_mels, cfg)


def test_discriminator_train_test_scores_only_the_clips_it_never_trained_on(band_mels):
    cfg, band_mels = band_mels
    low, high = band_mels(24, 10), band_mels(20, 40)
    kwargs = dict(epochs=4, batch_size=4, seed=0, learning_rate=5e-3)
    # scored on new clips of the two training distributions: always told apart
    test_low, test_high = band_mels(10, 10), band_mels(12, 40)
    right = two_sample.discriminator_train_test(low, high, test_low, test_high, cfg, **kwargs)
    assert right["accuracy"] >= 0.9
    assert right["n_train_per_class"] == 20.0 and right["n_test_per_class"] == 10.0
    # the test sides swapped: every clip on the wrong side, so the score comes from the test clips alone
    swapped = two_sample.discriminator_train_test(low, high, band_mels(10, 40), band_mels(10, 10), cfg, **kwargs)
    assert swapped["accuracy"] <= 0.1
    assert swapped["accuracy"] == pytest.approx((swapped["accuracy_real"] + swapped["accuracy_gen"]) / 2)
    # the classifier learns with the given optimizer settings, not with the run's D settings
    other_cfg = dataclasses.replace(cfg, d_learning_rate=1e-6, d_beta_1=0.9)
    same = two_sample.discriminator_train_test(low, high, test_low, test_high, other_cfg, **kwargs)
    assert same == right
    slow = two_sample.discriminator_train_test(low, high, test_low, test_high, cfg, **{**kwargs, "learning_rate": 1e-6})
    assert slow["accuracy"] < right["accuracy"]
    with pytest.raises(MusicRLError, match="test_gen_x holds no clips"):
        two_sample.discriminator_train_test(low, high, low, high[:0], cfg)
    with pytest.raises(MusicRLError, match="train_real_x must have shape"):
        two_sample.discriminator_train_test(low[:, :10], high, low, high, cfg)
    with pytest.raises(MusicRLError, match="epochs"):
        two_sample.discriminator_train_test(low, high, low, high, cfg, epochs=0)


# --------------------------------------------------------------------------
# long-range structure

CADENCE = [C_MAJOR, F_MAJOR, G_MAJOR, C_MAJOR]  # I IV V I in C major
A_MINOR = [A - 12, C, E]
D_MINOR = [62, F, A]
E_MAJOR = [E, 68, B]
A_MAJOR = [A - 12, 61, E]  # the Picardy third: A C# E


def _up(chords, semitones):
    return [[p + semitones for p in chord] for chord in chords]


def test_key_consistency_compares_the_halves_keys():
    seqs = seqs_from_chords([
        CADENCE * 2,                   # C major throughout
        CADENCE + _up(CADENCE, 6),     # C major, then F# major
        CADENCE + [[]] * 4,            # a silent second half has no key
        _up(CADENCE, 6) * 2,           # F# major throughout
    ])
    assert metrics.estimate_key(seqs[:1, :4])[0][0] == 0
    np.testing.assert_array_equal(metrics.key_consistency(seqs), [1.0, 0.0, np.nan, 1.0])
    assert metrics.key_consistency(seqs, pooled=True) == pytest.approx(2 / 3)
    # odd lengths cut at n_steps // 2: the first half is 2 steps of C, the second 3 of F#
    odd = seqs_from_chords([[C_MAJOR, C_MAJOR] + _up([C_MAJOR, F_MAJOR, G_MAJOR], 6)])
    assert metrics.key_consistency(odd)[0] == 0.0


def test_ends_on_tonic_in_any_voicing_skipping_final_rests():
    opening = [C_MAJOR, F_MAJOR]
    seqs = seqs_from_chords([
        opening + CADENCE,                                   # ends on C-E-G
        opening + [C_MAJOR, F_MAJOR, C_MAJOR, G_MAJOR],      # a half cadence
        opening + CADENCE[:3] + [[E - 12, G, C + 12, E + 12]],  # C major in first inversion, doubled
        CADENCE + [[], []],                                  # rests after the last chord
        opening + CADENCE[:3] + [[C - 12, C, G]],            # an open fifth
        opening + CADENCE[:3] + [[C, E, G, A]],              # an added sixth is another chord
        [[]] * 6,
    ])
    assert list(metrics.estimate_key(seqs[:6])[0]) == [0] * 6
    np.testing.assert_array_equal(metrics.ends_on_tonic(seqs), [1, 0, 1, 1, 1, 0, np.nan])
    assert metrics.ends_on_tonic(seqs, pooled=True) == pytest.approx(4 / 6)


def test_a_minor_piece_may_end_on_either_tonic_triad():
    tonic, is_minor, _ = metrics.estimate_key(seqs_from_chords([[A_MINOR, D_MINOR, E_MAJOR, A_MINOR]]))
    assert (tonic[0], is_minor[0]) == (9, True)
    ends = [A_MINOR, A_MAJOR, A_MINOR + [61], E_MAJOR]  # minor, Picardy, both thirds, dominant
    seqs = seqs_from_chords([[A_MINOR, D_MINOR, E_MAJOR, A_MINOR, D_MINOR, E_MAJOR, end] for end in ends])
    assert list(metrics.estimate_key(seqs)[0]) == [9] * 4
    np.testing.assert_array_equal(metrics.ends_on_tonic(seqs), [1, 1, 0, 0])


# --------------------------------------------------------------------------
# scale degrees


def _transpose(seqs, semitones):
    """Every piece moved up ``semitones`` pitch columns; no note may leave the grid."""
    moved = np.roll(seqs, semitones, axis=-1)
    # np.roll wraps what it pushes off one end onto the other
    edge = slice(0, semitones) if semitones > 0 else slice(seqs.shape[-1] + semitones, None)
    assert not moved[..., edge].any(), "a note wrapped around the grid"
    return moved


def _keyed_sets(rng):
    """A set of major pieces in C, D and A and a reference of major pieces in F and G and one in A minor."""
    seqs = np.concatenate([diatonic_seqs(rng, 2, n_steps=8, tonic=t) for t in (0, 2, 9)])
    ref = np.concatenate([diatonic_seqs(rng, 2, n_steps=8, tonic=t) for t in (5, 7)]
                         + [seqs_from_chords([[A_MINOR, D_MINOR, E_MAJOR, A_MINOR] * 2])])
    return seqs, ref


@pytest.mark.parametrize("semitones", [-11, -6, -1, 1, 2, 5, 7, 11])
@pytest.mark.parametrize("side", ["seqs", "reference"])
def test_scale_degree_overlap_ignores_transposing_either_set(rng, semitones, side):
    seqs, ref = _keyed_sets(rng)
    before = metrics.scale_degree_overlap(seqs, ref)
    assert 0 < before < 1
    moved = (_transpose(seqs, semitones), ref) if side == "seqs" else (seqs, _transpose(ref, semitones))
    assert metrics.scale_degree_overlap(*moved) == pytest.approx(before, abs=1e-12)
    np.testing.assert_allclose(metrics.scale_degree_histogram(_transpose(ref, semitones)),
                               metrics.scale_degree_histogram(ref), atol=1e-12)


def test_scale_degree_overlap_of_the_same_pieces_in_another_key():
    c_major = seqs_from_chords([CADENCE, [C_MAJOR, G_MAJOR, F_MAJOR, C_MAJOR]])
    g_major = seqs_from_chords([_up(CADENCE, 7), _up([C_MAJOR, G_MAJOR, F_MAJOR, C_MAJOR], -5)])
    assert list(metrics.estimate_key(g_major)[0]) == [7, 7]
    assert metrics.scale_degree_overlap(c_major, g_major) == pytest.approx(1.0)
    # in pitch classes the tonic triads fall on different classes: 8 of 12 notes shared
    assert metrics.pitch_class_overlap(c_major, g_major) == pytest.approx(8 / 12)


def test_scale_degree_histogram_and_overlap_of_hand_built_pieces():
    seqs = seqs_from_chords([CADENCE, [A_MINOR, D_MINOR, E_MAJOR, A_MINOR], [[]] * 4])
    hist = metrics.scale_degree_histogram(seqs)
    # I IV V I: C E G, C F A, B D G, C E G -> degrees 0:3, 2:1, 4:2, 5:1, 7:3, 9:1, 11:1 of 12 notes
    major = np.array([3, 0, 1, 0, 2, 1, 0, 3, 0, 1, 0, 1]) / 12
    # i iv V i in A minor: the third at 3, the sixth at 8 and the raised seventh (G#) at 11
    minor = np.array([3, 0, 1, 2, 0, 1, 0, 3, 1, 0, 0, 1]) / 12
    np.testing.assert_allclose(hist, [major, minor, np.zeros(12)], atol=1e-12)
    np.testing.assert_allclose(metrics.scale_degree_histogram(seqs, pooled=True), (major + minor) / 2, atol=1e-12)
    np.testing.assert_allclose(metrics.scale_degree_histogram(seqs[0]), hist[:1], atol=1e-12)
    # the modes differ on the third and the sixth: 3 of 12 notes
    assert metrics.scale_degree_overlap(seqs[:1], seqs[1:2]) == pytest.approx(9 / 12)
    # an empty piece adds nothing
    assert metrics.scale_degree_overlap(seqs[:2], seqs[:1]) == pytest.approx(
        metrics.scale_degree_overlap(seqs, seqs[:1]))
    # the tonic triad alone against the cadence: degrees 0, 4, 7 at 1/3 each against 3, 2, 3 of 12
    tonic_only = seqs_from_chords([[C_MAJOR] * 4])
    assert metrics.scale_degree_overlap(tonic_only, seqs[:1]) == pytest.approx(8 / 12)
    # the cadence in G: in pitch classes only C, E and G of the tonic triad are shared (1, 1 and 3 of 12)
    assert metrics.pitch_class_overlap(tonic_only, seqs_from_chords([_up(CADENCE, 7)])) == pytest.approx(5 / 12)
    assert metrics.scale_degree_overlap(tonic_only, seqs_from_chords([_up(CADENCE, 7)])) == pytest.approx(8 / 12)


def test_scale_degree_overlap_of_disjoint_degrees_and_of_nothing():
    tonic_triads = seqs_from_chords([[C_MAJOR] * 4])  # degrees 0, 4, 7
    # C-C#-D is read as D minor: degrees 10, 11 and 0, so only the tonic is shared
    cluster = seqs_from_chords([[CLUSTER] * 4])
    assert metrics.estimate_key(cluster)[0][0] == 2
    assert metrics.scale_degree_overlap(tonic_triads, cluster) == pytest.approx(1 / 3)
    silent = np.zeros((2, 4, 48))
    assert np.isnan(metrics.scale_degree_overlap(silent, tonic_triads))
    assert np.isnan(metrics.scale_degree_overlap(tonic_triads, silent))
    np.testing.assert_array_equal(metrics.scale_degree_histogram(silent, pooled=True), np.zeros(12))


def test_scale_degree_overlap_rejects_bad_sets():
    ok = seqs_from_chords([[C_MAJOR] * 4])
    for bad, match in BAD_SEQS:
        with pytest.raises(MusicRLError, match=match):
            metrics.scale_degree_overlap(ok, bad)
        with pytest.raises(MusicRLError, match=match):
            metrics.scale_degree_overlap(bad, ok)
    with pytest.raises(MusicRLError, match="lowest_pitch"):
        metrics.scale_degree_overlap(ok, ok, lowest_pitch=81)
    with pytest.raises(MusicRLError, match="pooled"):
        metrics.scale_degree_histogram(ok, pooled="yes")


def test_segment_similarity_of_hand_built_phrases():
    phrase_a = CADENCE
    phrase_b = _up(CADENCE, 1)  # no note in common with phrase_a
    varied = CADENCE[:3] + [[C, E, A]]  # one chord of four changed: Jaccard 2/4 there
    seqs = seqs_from_chords([
        phrase_a * 4,
        phrase_a + phrase_b + phrase_a + phrase_b,
        phrase_a * 2 + phrase_b * 2,
        phrase_a + varied + phrase_a + varied,
    ])
    sim = metrics.segment_similarity(seqs, segment=4)
    assert sim.shape == (4, 4, 4)
    np.testing.assert_allclose(sim[0], np.ones((4, 4)))
    np.testing.assert_allclose(sim[1], [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_allclose(sim[3, 0], [1, 0.875, 1, 0.875])
    np.testing.assert_allclose(sim, sim.transpose(0, 2, 1))
    np.testing.assert_allclose(metrics.self_similarity(seqs), [1, 4 / 12, 4 / 12, (4 + 8 * 0.875) / 12])
    assert metrics.self_similarity(seqs, pooled=True) == pytest.approx(
        np.mean([1, 4 / 12, 4 / 12, (4 + 8 * 0.875) / 12]))
    # segments of 8 steps: the AABB piece has halves AA and BB, no note in common
    assert metrics.self_similarity(seqs[2:3], segment=8)[0] == 0.0


def test_segment_similarity_counts_rests_and_drops_the_remainder():
    # two rests are alike; steps after the last whole segment are not read
    seqs = seqs_from_chords([[[], C_MAJOR, [], C_MAJOR, CLUSTER]])
    sim = metrics.segment_similarity(seqs, segment=2)
    np.testing.assert_allclose(sim[0], np.ones((2, 2)))


def test_in_key_by_position_splits_the_pieces_in_key_share():
    # C major with a cluster C-C#-D near the end: one note out of the key
    piece = CADENCE * 3 + [C_MAJOR, CLUSTER, G_MAJOR, C_MAJOR]
    seqs = seqs_from_chords([piece, CADENCE * 4])
    assert metrics.estimate_key(seqs[:1])[0][0] == 0
    parts = metrics.in_key_by_position(seqs, n_parts=4)
    np.testing.assert_allclose(parts, [[1, 1, 1, 11 / 12], [1, 1, 1, 1]])
    # one part is the whole piece's in-key share; as many parts as steps is per_step
    np.testing.assert_allclose(metrics.in_key_by_position(seqs, n_parts=1)[:, 0], metrics.in_key_rate(seqs))
    np.testing.assert_allclose(metrics.in_key_by_position(seqs, n_parts=16),
                               metrics.in_key_rate(seqs, per_step=True))
    # parts of unequal length: 16 steps in 3 parts of 5, 5 and 6
    np.testing.assert_allclose(metrics.in_key_by_position(seqs, n_parts=3)[0], [1, 1, 17 / 18])
    np.testing.assert_allclose(metrics.in_key_by_position(seqs, n_parts=4, pooled=True), [1, 1, 1, 23 / 24])
    silent = metrics.in_key_by_position(seqs_from_chords([CADENCE + [[]] * 4]), n_parts=2)
    np.testing.assert_array_equal(silent, [[1.0, np.nan]])


def test_long_range_measures_reject_bad_input():
    seqs = seqs_from_chords([CADENCE * 2])
    with pytest.raises(MusicRLError, match="at least 2 steps"):
        metrics.key_consistency(seqs[:, :1])
    with pytest.raises(MusicRLError, match="fewer than 2 segments"):
        metrics.segment_similarity(seqs, segment=5)
    with pytest.raises(MusicRLError, match="segment"):
        metrics.self_similarity(seqs, segment=0)
    with pytest.raises(MusicRLError, match="n_parts"):
        metrics.in_key_by_position(seqs, n_parts=9)
    for fn in (metrics.key_consistency, metrics.ends_on_tonic, metrics.self_similarity,
               metrics.in_key_by_position):
        with pytest.raises(MusicRLError, match="multi-hot"):
            fn(np.full((1, 8, 48), 0.5))
        with pytest.raises(MusicRLError, match="pooled"):
            fn(seqs, pooled="yes")
    for fn in (metrics.key_consistency, metrics.ends_on_tonic, metrics.in_key_by_position):
        with pytest.raises(MusicRLError, match="lowest_pitch"):
            fn(seqs, lowest_pitch=81)
