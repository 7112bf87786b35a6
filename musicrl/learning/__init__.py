"""The agent, its critic and the adversarial loop that trains both.

- :mod:`~musicrl.learning.agent`: the chord policy and its update steps.
- :mod:`~musicrl.learning.vocab`: the policy's chord vocabulary and the chord <-> index mapping.
- :mod:`~musicrl.learning.chord_dist`: log-probs, entropies, KLs and draws of one chord step.
- :mod:`~musicrl.learning.discriminator`: D and its trainer.
- :mod:`~musicrl.learning.replay`: the replay buffer of older generated clips and D's batch draws.
- :mod:`~musicrl.learning.reward`: D's logits -> rewards -> returns -> advantages.
- :mod:`~musicrl.learning.env`: ``MusicEnv``, the task as a Gymnasium environment.
- :mod:`~musicrl.learning.distribute`: ``tf.distribute`` strategies for several devices or machines.
- :mod:`~musicrl.learning.train`: the training loop, its run folder and checkpoints.
- :mod:`~musicrl.learning.load`: a trained run read back: its policy at a checkpoint, and pieces drawn from it.
"""
