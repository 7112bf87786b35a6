"""The music itself: MIDI files, the chord grid (seqs), the data sets and the symbolic measures.

- :mod:`~musicrl.music.midi`: reading, writing and generating MIDI (``pretty_midi.PrettyMIDI``).
- :mod:`~musicrl.music.vectorize`: ``midi_to_seq`` / ``seq_to_midi``, PrettyMIDI <-> binary chord grid.
- :mod:`~musicrl.music.data`: the Bach chorale set and user folders, cut into training windows.
- :mod:`~musicrl.music.metrics`: measures of a set of seqs (key, chords, pitch classes, copies).
"""
