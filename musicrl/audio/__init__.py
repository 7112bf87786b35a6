"""What D hears: seqs rendered to waveforms and log-mel spectrograms.

- :mod:`~musicrl.audio.synth`: ``seq_to_wav`` (the fast additive synthesizer) and General MIDI soundfont rendering.
- :mod:`~musicrl.audio.mel`: ``wav_to_mel``, and ``seq_to_mel``, the batched path from seqs straight to log-mels.
"""
