"""How good the music is: set comparisons against held-out real music, run reports and sweeps."""
