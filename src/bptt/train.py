"""The one training loop. It knows no task.

Its contract with the rest of the house:

- ``model``: ``.params`` (name -> array), ``.state_dict()``, ``.load_state_dict()``,
  and ``loss_and_grads(batch, state, rng) -> (loss, grads, final_state)``, the
  loss a mean per token and the grads keyed like the params;
- ``batches``: an endless, resumable source: ``next_batch()``, ``state_dict()``
  (its position, a JSON-able dict) and ``load_state_dict()``; each batch has ``num_tokens``
  and ``carry_state`` (True: it continues the previous batch, so the previous
  final state is passed in, as truncated BPTT needs; no gradient crosses);
- ``evaluate(model) -> dict`` with at least ``"loss"`` (mean per token, nats);
- ``optimizer`` and ``schedule`` (``lr = schedule(step, base_lr)``) from :mod:`bptt.optim`;
- ``comm`` (:mod:`bptt.distributed`) and ``accumulate`` K: each batch is a global one of
  W x K x B rows, of which this rank computes its K micro-batches and the ranks
  sum their count-weighted gradients in one Allreduce (see :func:`global_batch_size`).

Everything a run needs to continue bit for bit (parameters, optimizer moments,
schedule position, RNG state, data position, carried state) is saved in the
checkpoint, so stopping and resuming gives the parameters an uninterrupted run
would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bptt.checkpoint import load_checkpoint, require_fields, save_checkpoint
from bptt.distributed import (
    LocalComm,
    join_state,
    rank_generator,
    shard_rows,
    split_batch,
    split_state,
)
from bptt.errors import BpttError, CheckpointError, TrainingInterrupted
from bptt.interrupts import CtrlC, resume_hint
from bptt.optim import OPTIMIZERS, SCHEDULES, clip_grad_norm
from bptt.tensorboard import EventWriter, record_scalars

LATEST, BEST = "latest.safetensors", "best.safetensors"
LN2 = math.log(2.0)


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    evals_without_improvement: int = 0
    history: list = field(default_factory=list)


def _state_tensors(state) -> dict[str, np.ndarray]:
    if state is None:
        return {}
    parts = state if isinstance(state, tuple) else (state,)
    return {f"carry.{i}": p for i, p in enumerate(parts)}


def _state_from_tensors(tensors: dict) -> object:
    parts = [tensors[f"carry.{i}"] for i in range(len(tensors)) if f"carry.{i}" in tensors]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else tuple(parts)


_RESUME_FIELDS = {"progress": dict, "optimizer": dict, "rng": dict, "data_position": dict}
_PROGRESS_FIELDS = {"step": int, "best_loss": (int, float), "best_step": int, "history": list}
_PROGRESS_FIELDS["evals_without_improvement"] = int


@contextmanager
def _field(path, name: str):
    """Turn any complaint about one piece of a checkpoint into a CheckpointError naming it."""
    try:
        yield
    except (BpttError, TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"checkpoint '{path}': field {name!r} does not fit: {e}") from None


class Trainer:
    """Runs updates, evaluates, keeps the best and the latest checkpoint, logs metrics.

    ``metadata`` (for example the config and the vocabulary) is stored in every
    checkpoint unchanged, so a checkpoint alone can rebuild the model.
    """

    def __init__(
        self,
        model,
        optimizer,
        schedule,
        batches,
        evaluate,
        *,
        steps: int,
        out_dir: str | Path,
        rng: np.random.Generator,
        clip: float = 0.0,
        eval_every: int = 100,
        patience: int = 0,
        metadata: dict | None = None,
        progress_bar: bool = True,
        skip_non_finite: int = 0,
        comm=None,
        tensorboard: str | Path | None = None,
        accumulate: int = 1,
        monitor: str = "loss",
    ):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.batches, self.evaluate = batches, evaluate
        self.steps, self.rng, self.clip = steps, rng, clip
        self.eval_every, self.patience = eval_every, patience
        # The validation metric that picks the best checkpoint: the loss (lowest), or another
        # (highest; Progress.best_loss then holds its negative, so lower is better throughout).
        self.monitor = monitor
        self.out_dir = Path(out_dir)
        self.metadata = metadata or {}
        self.progress_bar = progress_bar
        self.progress = Progress()
        self.base_lr = optimizer.lr
        self.carry = None  # the final state of the last batch, for TBPTT
        # Non-finite updates skipped in a row before training stops (0: stop at the first).
        self.skip_non_finite, self.skipped = skip_non_finite, 0
        self._mid_update = False
        self.last_save: tuple[Path, int] | None = None  # (checkpoint, update): where to resume
        # Data parallel (bptt.distributed): gradients averaged over ranks before clipping;
        # every rank starts from rank 0's parameters; only rank 0 writes.
        self.comm = LocalComm() if comm is None else comm
        self.comm.broadcast_params(model.params)
        self.progress_bar = progress_bar and self.comm.is_root
        # A folder for TensorBoard event files (bptt.tensorboard), beside metrics.jsonl.
        self.tensorboard = tensorboard
        self.accumulate = accumulate
        self.rng = rank_generator(rng, self.comm.rank)  # rank r's own dropout stream
        self._interrupts = None  # run()'s Ctrl-C counter; ranks stop together (see update)
        self._stop = False

    # -- checkpoints ---------------------------------------------------------

    def save(self, name: str) -> Path:
        """Write the checkpoint ``name`` (every rank calls it; rank 0 writes).

        With W ranks, what each carries is gathered to rank 0 first: the carried
        states side by side along the batch axis, as one process reading all W x K x B
        rows carries them ("carry.i"), and every rank's RNG state ("rng" is rank 0's,
        "rank_rngs" the others'), so W ranks resume exactly where they stopped.
        """
        carried = self.comm.gather((self.carry, self.rng.bit_generator.state))
        if not self.comm.is_root:  # the ranks hold the same parameters: one writer
            return self.out_dir / name
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optim_state = self.optimizer.state_dict()
        tensors |= {f"optim.{k}": v for k, v in optim_state.items() if isinstance(v, np.ndarray)}
        optim_scalars = {k: v for k, v in optim_state.items() if not isinstance(v, np.ndarray)}
        tensors |= _state_tensors(join_state([c for c, _ in carried]))
        meta = {
            **self.metadata,
            "progress": {k: v for k, v in vars(self.progress).items()},
            "optimizer": optim_scalars,
            "rng": self.rng.bit_generator.state,
            "data_position": self.batches.state_dict(),
        }
        if self.comm.size > 1:
            meta["rank_rngs"] = [r for _, r in carried[1:]]
        path = self.out_dir / name
        save_checkpoint(path, tensors, meta)
        if name == LATEST:
            self.last_save = (path, self.progress.step)
        return path

    def resume(self, path: str | Path) -> None:
        """Continue exactly where the checkpoint at ``path`` stopped.

        Every piece is checked before use; a piece that does not fit raises a
        CheckpointError naming the file and the field (the trainer is then not
        to be used: build a fresh one).
        """
        tensors, meta = load_checkpoint(path)
        require_fields(path, meta, _RESUME_FIELDS)
        for key, mine in self.metadata.items():  # task, vocabulary...: what the run is about
            if key != "config" and meta.get(key) != mine:
                saved, want = repr(meta.get(key)), repr(mine)
                shown = f" ({saved}, this run has {want})" if len(saved + want) < 80 else ""
                raise CheckpointError(
                    f"checkpoint '{path}' was saved with another {key!r} than this run has"
                    f"{shown}: a checkpoint of another task, vocabulary or data?"
                )
        require_fields(path, meta["progress"], _PROGRESS_FIELDS)
        extra = sorted(set(meta["progress"]) - set(_PROGRESS_FIELDS))
        if extra:
            raise CheckpointError(f"checkpoint '{path}': unknown progress fields {extra}")
        model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        arrays = {k[len("optim.") :]: v for k, v in tensors.items() if k.startswith("optim.")}
        carry = {k: v for k, v in tensors.items() if k.startswith("carry.")}
        with _field(path, "model weights"):
            self.model.load_state_dict(model)
        with _field(path, "optimizer"):
            self.optimizer.load_state_dict({**meta["optimizer"], **arrays})
        self.progress = Progress(**meta["progress"])
        rngs = meta.get("rank_rngs", [])
        with _field(path, "rng"):
            if not isinstance(rngs, list):
                raise ValueError(f"rank_rngs must be a list, got {type(rngs).__name__}")
            if self.comm.size == len(rngs) + 1:  # the same ranks: each its own stream on
                self.rng.bit_generator.state = [meta["rng"], *rngs][self.comm.rank]
            else:  # another world size: rank 0's stream, jumped per rank as at the start
                root = np.random.default_rng()
                root.bit_generator.state = meta["rng"]
                self.rng = rank_generator(root, self.comm.rank)
        with _field(path, "data_position"):
            self.batches.load_state_dict(meta["data_position"])
        self.carry = None  # the streams start over, unless the same streams were saved
        whole = _state_from_tensors(carry)
        if whole is not None and not getattr(self.batches, "resharded", False):
            rows = shard_rows(_state_rows(whole), self.comm.rank, self.comm.size, self.accumulate)
            (self.carry,) = split_state(whole, [slice(rows[0].start, rows[-1].stop)])
        self.last_save = (Path(path), self.progress.step)

    # -- the loop ------------------------------------------------------------

    def update(self) -> tuple[float, float, int]:
        """One parameter update: loss, gradient norm before clipping, tokens seen."""
        self._mid_update = True  # Ctrl-C now would leave a torn update: never saved
        if self.comm.size * self.accumulate == 1:  # one process, one batch
            batch = self.batches.next_batch()
            state = self.carry if batch.carry_state else None
            loss, grads, self.carry = self.model.loss_and_grads(batch, state, self.rng)
            tokens = batch.num_tokens
        else:
            loss, grads, tokens = self._combined_gradient()
        norm = clip_grad_norm(grads, self.clip) if self.clip > 0 else _global_norm(grads)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            bad = [k for k, g in grads.items() if not np.isfinite(g).all()]
            what = f"loss {loss}, non-finite gradients in {bad or 'none'}"
            self.skipped += 1
            if self.skipped > self.skip_non_finite:
                raise BpttError(
                    f"training diverged at update {self.progress.step + 1}: {what}; the last "
                    f"good checkpoint is kept (try a lower --lr or --clip)"
                )
            # Skip: no parameter or moment changes; the streams start over from zeros.
            tqdm.write(f"update {self.progress.step + 1} skipped: {what}")
            self.carry = None
            self.progress.step += 1
            self._mid_update = False
            return loss, norm, tokens
        self.skipped = 0
        self.optimizer.lr = self.schedule(self.progress.step, self.base_lr)
        self.optimizer.step(self.model.params, grads)
        self.progress.step += 1
        self.comm.check_params(self.model.params, self.progress.step)
        self._mid_update = False
        return loss, norm, tokens

    def _combined_gradient(self) -> tuple[float, dict, int]:
        """This rank's K micro-batches of the next global batch, their count-weighted
        gradient sums added over all ranks in one Allreduce: the mean loss and gradient of
        the whole batch, and its tokens (see :mod:`bptt.distributed`).

        A source with ``next_batch_parts(cut)`` (examples, pairs) builds only this rank's
        rows, each micro-batch padded to its own longest sequence; otherwise (TBPTT
        windows, which carry their state) the global batch is cut here."""
        W, r, K = self.comm.size, self.comm.rank, self.accumulate
        if hasattr(self.batches, "next_batch_parts"):
            parts = self.batches.next_batch_parts(lambda n: shard_rows(n, r, W, K))
            states = [None] * len(parts)  # independent sequences: nothing is carried
        else:
            batch = self.batches.next_batch()
            rows = shard_rows(_batch_rows(batch), r, W, K)
            start = rows[0].start
            local = [slice(s.start - start, s.stop - start) for s in rows]
            carry = self.carry if batch.carry_state else None
            if carry is not None and _state_rows(carry) != rows[-1].stop - start:
                carry = None  # another cut of the streams (an old multi-rank checkpoint)
            parts, states = split_batch(batch, rows), split_state(carry, local)
        sums, loss_sum, count, tokens, finals = None, 0.0, 0, 0, []
        for part, state in zip(parts, states, strict=True):
            if part is None:  # fewer rows than parts: this one has none
                finals.append(state)
                continue
            loss, grads, final = self.model.loss_and_grads(part, state, self.rng)
            n = self.model.loss_count(part)
            if sums is None:
                sums = {k: n * g for k, g in grads.items()}  # new arrays: the model reuses its own
            else:
                for k, g in grads.items():
                    sums[k] += n * g
            loss_sum, count, tokens = loss_sum + n * loss, count + n, tokens + part.num_tokens
            finals.append(final)
        if sums is None:
            sums = {k: np.zeros_like(p) for k, p in self.model.params.items()}
        wants_stop = float(bool(self._interrupts and self._interrupts.count))
        sums, (loss_sum, count, tokens, stops) = self.comm.allreduce_sum(
            sums, [loss_sum, count, tokens, wants_stop]
        )
        self._stop = stops > 0  # any rank's Ctrl-C stops every rank after this update
        for g in sums.values():
            g /= count
        self.carry = join_state(finals)
        return loss_sum / count, sums, int(tokens)

    def run(self) -> Progress:
        """Train until ``steps`` updates, early stopping, or Ctrl-C (which saves first)."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            name = "metrics.jsonl" if self.comm.is_root else os.devnull
            log = (self.out_dir / name).open("a", encoding="utf-8")
        except OSError as e:
            raise BpttError(
                f"cannot write to the output folder '{self.out_dir}': {e.strerror or e} "
                "(choose a writable folder with --out)"
            ) from None
        bar = tqdm(
            total=self.steps,
            initial=self.progress.step,
            disable=not self.progress_bar,
            unit="upd",
            dynamic_ncols=True,
        )
        ctrl_c = CtrlC()
        events = None
        self._interrupts, self._stop = ctrl_c, False
        try:
            if self.tensorboard is not None and self.comm.is_root:
                events = EventWriter(self.tensorboard)
            with ctrl_c:
                self._loop(bar, log, ctrl_c, events)
        except KeyboardInterrupt:
            raise self._interrupted(bar) from None
        finally:
            bar.close()
            log.close()
            if events is not None:
                events.close()
        return self.progress

    def _interrupted(self, bar) -> TrainingInterrupted:
        """After Ctrl-C: save the last whole update (a save no further Ctrl-C can cut short),
        or, when a second Ctrl-C tore an update, keep the last whole save; say which."""
        if not self._mid_update:
            bar.write(f"interrupted after update {self.progress.step}: saving {LATEST}")
            try:
                with CtrlC(hold=True):  # a Ctrl-C now waits for the save to finish
                    self.save(LATEST)
            except KeyboardInterrupt:  # signals could not be deferred (not the main thread)
                pass  # the write is atomic: LATEST is the previous save or this one, whole
            step = self.progress.step
            if self.last_save and self.last_save[1] == step:
                return resume_hint("saved", *self.last_save)
        if self._mid_update:
            cut = f"update {self.progress.step + 1} was cut short by a second Ctrl-C: not saved"
        else:
            cut = f"the save of update {self.progress.step} did not finish"
        if self.last_save is None:
            return TrainingInterrupted(
                f"{cut}; no checkpoint was saved (the first is written at update "
                f"{min(self.eval_every, self.steps)})"
            )
        return resume_hint(f"{cut}; the last checkpoint is", *self.last_save)

    def _loop(self, bar, log, ctrl_c: CtrlC, events=None) -> None:
        tokens, started = 0, time.perf_counter()
        while self.progress.step < self.steps:
            if self._stopping(ctrl_c):  # Ctrl-C came: the last update is whole, stop here
                raise KeyboardInterrupt
            loss, norm, n = self.update()
            tokens += n
            rate = tokens / (time.perf_counter() - started)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", bpc=f"{loss / LN2:.3f}", tok_s=f"{rate:,.0f}")
            record = {"step": self.progress.step, "loss": loss, "grad_norm": norm}
            record |= {"lr": self.optimizer.lr, "tokens_per_s": rate}
            at_end = self.progress.step == self.steps
            if self.progress.step % self.eval_every == 0 or at_end:
                record |= self._evaluate(bar)
                self.save(LATEST)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if events is not None:
                events.scalars(self.progress.step, record_scalars(record))
            if self.patience and self.progress.evals_without_improvement >= self.patience:
                bar.write(
                    f"early stop: no better validation {self.monitor} in {self.patience} evals"
                )
                break
        if self._stopping(ctrl_c):
            raise KeyboardInterrupt

    def _stopping(self, ctrl_c: CtrlC) -> bool:
        """One process: its Ctrl-C. Several ranks: any rank's, as the last update summed it,
        so all stop after the same update and save together."""
        return self._stop if self.comm.size > 1 else bool(ctrl_c.count)

    def _evaluate(self, bar) -> dict:
        metrics = {f"val_{k}": v for k, v in self.evaluate(self.model).items()}
        metrics = self.comm.broadcast_object(metrics)  # rank 0's: every rank decides alike
        p = self.progress
        p.history.append({"step": p.step, **metrics})
        key = f"val_{self.monitor}"
        if key not in metrics:
            names = ", ".join(k[4:] for k in metrics)
            raise BpttError(f"--monitor {self.monitor}: the validation metrics are {names}")
        value = metrics[key] if self.monitor == "loss" else -metrics[key]  # lower is better
        if value < p.best_loss:
            p.best_loss, p.best_step, p.evals_without_improvement = value, p.step, 0
            self.save(BEST)
        else:
            p.evals_without_improvement += 1
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self.comm.is_root:
            bar.write(f"step {p.step:>6}  {shown}")
        return metrics


def _batch_rows(batch) -> int:
    values = (getattr(batch, f.name) for f in dataclasses.fields(batch))
    return max(v.shape[0] for v in values if isinstance(v, np.ndarray) and v.ndim >= 1)


def _state_rows(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]  # (L*K, n, H)


def build_optimizer(config) -> tuple:
    """The optimizer and learning-rate schedule a config names (looked up in fixed tables)."""
    kwargs = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    optimizer = OPTIMIZERS[config.optimizer](lr=config.lr, **kwargs)
    if config.schedule == "cosine":
        return optimizer, SCHEDULES["cosine"](config.steps, min_lr=config.lr / 10)
    return optimizer, SCHEDULES["constant"]()


def _global_norm(grads: dict[str, np.ndarray]) -> float:
    return float(math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
