"""The agent, its critic and the adversarial loop that trains both.

- :mod:`~musicrl.learning.agent`: the chord policy, its vocabulary and its update steps.
- :mod:`~musicrl.learning.discriminator`: D, its replay buffer and its trainer.
- :mod:`~musicrl.learning.reward`: D's logits -> rewards -> returns -> advantages.
- :mod:`~musicrl.learning.env`: ``MusicEnv``, the task as a Gymnasium environment.
- :mod:`~musicrl.learning.distribute`: ``tf.distribute`` strategies for several devices or machines.
- :mod:`~musicrl.learning.train`: the training loop, its run folder and checkpoints.
"""
