"""Encoder-decoder tasks with attention: ``dates``, ``g2p``, ``de_en``; what they share
(batches of pairs, decoding, their :class:`~bptt.tasks.base.Task`) is ``translation``.
"""
