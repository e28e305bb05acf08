"""Text and music generation: language models over characters, words or events.

``lm`` (any text), ``names`` (first names), ``music`` (ABC folk tunes, with
``abc_meter`` and ``music_render``), ``chorales`` (Bach melodies as events, with
``chorale_events`` and ``tune_split``).
"""
