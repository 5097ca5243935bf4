"""The rollout core: episodes as token ids with loss masks, played turn by turn through a generation backend.

``play.play_episodes`` drives an ``ExpertMathVectorEnv`` and asks a ``backend.GenerationBackend``
for each turn; ``backend.make_backend`` is the one factory of backends, which are found by their
``@register_backend`` decorators (``plugins``); ``sampling.LocalBackend`` (our KV-cached decoders,
``decoding``) is the first one, and ``continuation`` builds whole turns for generators that stop only
at token ids. ``teacher`` writes supervised episodes through the same environment.
"""
