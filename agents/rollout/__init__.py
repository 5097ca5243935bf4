"""The rollout core: episodes as token ids with loss masks, played turn by turn through a generation backend.

``play.play_episodes`` drives an ``ExpertMathVectorEnv`` and asks a ``backend.GenerationBackend``
for each turn; ``sampling.LocalBackend`` (our KV-cached decoders, ``decoding``) is the first backend.
``teacher`` writes supervised episodes through the same environment.
"""
