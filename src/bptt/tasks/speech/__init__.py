"""Speech: ``digits`` (a word per clip), ``ctc_digits`` (digit strings, CTC), ``trigger``
(a trigger word, live; clips from ``trigger_clips``), over corpora that ``speech_synth``
says and ``speech_corpus`` caches.
"""
