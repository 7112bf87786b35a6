"""What a run leaves on disk: its folder (``runs``) and its atomic checkpoints (``checkpoint``)."""
