"""Vocabularies, text reading, batching (padding, masks, TBPTT windows)."""
