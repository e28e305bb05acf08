"""The lecture's architecture types as models; each exposes ``loss_and_grads(batch)``.

- many-to-many, Tx = Ty, one symbol ahead: :class:`LanguageModel`
- many-to-one: :class:`SequenceClassifier`
- many-to-many, Tx = Ty, a label per step: :class:`SequenceTagger`
- many-to-many, Tx ≠ Ty, encoder-decoder with attention: :class:`Seq2Seq`
- many-to-many, Tx ≠ Ty, unaligned, CTC (frames -> a label string): :class:`CTCRecognizer`
"""

from bptt.models.classifier import SequenceClassifier
from bptt.models.ctc import CTCRecognizer
from bptt.models.language_model import LanguageModel
from bptt.models.seq2seq import Seq2Seq
from bptt.models.tagger import SequenceTagger

__all__ = ["CTCRecognizer", "LanguageModel", "Seq2Seq", "SequenceClassifier", "SequenceTagger"]
