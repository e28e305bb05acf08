"""Classify a sequence or tag each step: ``sentiment``, ``ner``, ``dna``, ``activity``.

The shared wiring (splits, batches, the classifier or tagger) is
:mod:`bptt.tasks._examples`.
"""
