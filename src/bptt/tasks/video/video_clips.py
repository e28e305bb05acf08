"""Action clips rendered on the spot: an articulated figure, many actors, a split by actor.

No labelled action video can be downloaded here, so the video task draws its
own, in the spirit of the KTH set: grayscale clips of an articulated figure
(a head, a torso, two arms and two legs, each limb two segments with a joint)
doing one of the eleven :data:`ACTIONS`.
"stand up" is "sit down" reversed and "get up" "kneel down" reversed, so one frame,
or all of them averaged, cannot tell a pair apart; "walk" and "run" share their
poses and differ mostly in tempo. Waving raises a hand above the head; clapping
brings both hands together before the chest, the near one swinging forward as the
far one swings back.

Every clip draws
    an actor      limb lengths (each 0.8..1.2 of the mean), line thickness, head style
    the action's  tempo (cycles per frame), amplitude, phase, duration
    the camera    figure height (19..26 px), start position, direction (left or right)
    clutter       2..4 static shapes, a moving ball (70%), an occluding bar (25%),
                  background and figure brightness, Gaussian noise (sigma 0..0.05)
and the figure (with its thickness and head) stays inside the frame in every frame.

The split by actor (fixed, the same on every machine): actor a's body is drawn
from ``default_rng([ACTOR_SEED, a])``; actors a mod 5 == 0 are test actors,
a mod 5 == 1 validation actors, the rest training actors, so a test actor's
proportions are never seen in training.

A clip is fixed by (kind, split, index, seed): :func:`render_clip` draws it from
``default_rng([seed, kind, split, index])``; :func:`make_clips` renders a whole
set once and caches it (one ``.npz``, written atomically) under
``cache_dir("video")`` keyed by the generator's version and the arguments.

Shapes: N clips, T frames, S pixels a side (P = S*S), J joints.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.data.cache import cache_dir
from bptt.errors import BpttError, DataError

GENERATOR_VERSION = 4  # bump when a change makes the same arguments draw different clips
ACTIONS = (
    *("walk", "run", "jump", "wave one hand", "wave both hands", "clap", "box"),
    *("sit down", "stand up", "kneel down", "get up"),  # posture changes, two of them reversed
)
REVERSED = {"stand up": "sit down", "get up": "kneel down"}  # rendered as the other, backwards
SPLITS = ("train", "validation", "test")
KINDS = ("single", "pair")  # one action per clip, or two actions one after the other
ACTOR_SEED = 2024
NUM_ACTORS = 60  # 12 test, 12 validation, 36 training actors
SIZE = 32  # S: pixels a side
FRAMES = (20, 28)  # T of a one-action clip, inclusive
PAIR_FRAMES = 32  # T of a two-action clip
HEIGHT_PX = (19.0, 26.0)  # the standing figure's height
MARGIN = 1.0  # pixels kept free at the frame's edge

# Mean body, in units of the standing height (head top to feet ~0.96).
BODY = dict(torso=0.30, head=0.075, neck=0.02, thigh=0.25, shin=0.24, upper_arm=0.17, forearm=0.16)
# Joints: 0 hip, 1 neck, 2 head centre, 3/4 elbow near/far, 5/6 hand near/far,
# 7/8 knee near/far, 9/10 foot near/far. Segments (a, b, brightness): far limbs dimmer.
SEGMENTS = (
    *((0, 1, 1.0), (1, 3, 1.0), (3, 5, 1.0), (1, 4, 0.7), (4, 6, 0.7)),  # torso, arm, far arm
    *((0, 7, 1.0), (7, 9, 1.0), (0, 8, 0.7), (8, 10, 0.7)),  # leg, far leg
)


@dataclass(frozen=True)
class Actor:
    """One body: limb lengths (units of the mean standing height), thickness (px), head."""

    index: int
    lengths: tuple[float, ...]  # torso, head, neck, thigh, shin, upper_arm, forearm
    thickness: float
    filled_head: bool

    def __getitem__(self, name: str) -> float:
        return self.lengths[tuple(BODY).index(name)]


def actor_split(index: int) -> str:
    """The split an actor belongs to: a mod 5 == 0 test, == 1 validation, else train."""
    return {0: "test", 1: "validation"}.get(index % 5, "train")


def actors(split: str) -> list[int]:
    """The indices of ``split``'s actors."""
    if split not in SPLITS:
        raise BpttError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return [a for a in range(NUM_ACTORS) if actor_split(a) == split]


def make_actor(index: int) -> Actor:
    """Actor ``index``'s body, the same on every machine."""
    rng = np.random.default_rng([ACTOR_SEED, index])
    lengths = tuple(float(v * rng.uniform(0.8, 1.2)) for v in BODY.values())
    return Actor(index, lengths, float(rng.uniform(1.5, 2.5)), bool(rng.random() < 0.5))


# ---------------------------------------------------------------- poses
# A pose per frame: hip lift (units, up), torso lean (radians, forward), and per limb
# (arm near, arm far, leg near, leg far) the upper angle and the lower angle, both
# from straight down, positive towards the facing direction.


def _smooth(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _poses(action: str, n: int, rng: np.random.Generator, fill: bool = False):
    """Angles (n, 4, 2), lean (n,), lift (n,), forward speed (n,) of ``n`` frames. A
    transition (sit or kneel down) takes 55..85% of them, all with ``fill`` (so a label
    covers its frames); a :data:`REVERSED` action is the other's poses backwards."""
    if action in REVERSED:
        return tuple(a[::-1].copy() for a in _poses(REVERSED[action], n, rng, fill))
    deg = np.pi / 180
    t = np.arange(n, dtype=np.float64)  # (n,)
    angles = np.zeros((n, 4, 2))  # (n, limb, upper/lower)
    lean, lift, speed = np.zeros(n), np.zeros(n), np.zeros(n)
    phase = rng.uniform(0, 2 * np.pi)
    if action in ("walk", "run"):
        run = action == "run"
        freq = rng.uniform(1 / 9, 1 / 6) if run else rng.uniform(1 / 20, 1 / 13)  # cycles/frame
        phi = 2 * np.pi * freq * t + phase  # (n,)
        swing = rng.uniform(22, 36) * deg if run else rng.uniform(16, 30) * deg
        arm = rng.uniform(18, 34) * deg
        knee = rng.uniform(25, 50) * deg if run else rng.uniform(15, 35) * deg
        elbow = rng.uniform(40, 80) * deg if run else rng.uniform(10, 40) * deg
        for leg, sign in ((2, 1), (3, -1)):
            angles[:, leg, 0] = sign * swing * np.sin(phi)
            angles[:, leg, 1] = angles[:, leg, 0] - knee * np.maximum(0, -sign * np.cos(phi))
        for limb, sign in ((0, -1), (1, 1)):
            angles[:, limb, 0] = sign * arm * np.sin(phi)
            angles[:, limb, 1] = angles[:, limb, 0] + elbow
        lean[:] = rng.uniform(6, 14) * deg if run else rng.uniform(0, 6) * deg
        lift[:] = (0.03 if run else 0.01) * np.abs(np.sin(phi))
        speed[:] = 4 * 0.49 * np.sin(swing) * freq  # two steps of 2 L sin(swing) per cycle
    elif action == "jump":
        freq = rng.uniform(1 / 14, 1 / 9)
        p = (freq * t + phase / (2 * np.pi)) % 1.0  # (n,) progress through one jump
        crouch = np.where(p < 0.25, np.sin(np.pi * p / 0.25), 0.0)
        crouch += np.where(p > 0.6, np.sin(np.pi * np.clip((p - 0.6) / 0.4, 0, 1)), 0.0)
        bend = rng.uniform(40, 65) * deg
        for leg in (2, 3):
            angles[:, leg, 0] = bend * crouch
            angles[:, leg, 1] = -0.8 * bend * crouch
        air = np.where((p >= 0.25) & (p <= 0.6), np.sin(np.pi * (p - 0.25) / 0.35), 0.0)
        lift[:] = rng.uniform(0.12, 0.25) * air
        for limb in (0, 1):
            angles[:, limb, 0] = -20 * deg * crouch + 150 * deg * air
            angles[:, limb, 1] = angles[:, limb, 0] + 20 * deg
        lean[:] = 15 * deg * crouch
    elif action in ("wave one hand", "wave both hands"):
        freq = rng.uniform(1 / 10, 1 / 5)
        phi = 2 * np.pi * freq * t + phase
        width = rng.uniform(25, 45) * deg
        raised = (0, 1) if action == "wave both hands" else (int(rng.integers(2)),)
        for limb in (0, 1):
            if limb in raised:
                sign = 1 if limb == 0 else -1  # the near arm up in front, the far one behind
                angles[:, limb, 0] = sign * rng.uniform(95, 125) * deg
                tilt = np.pi - rng.uniform(0, 20) * deg  # the forearm up, leaning out
                angles[:, limb, 1] = sign * tilt + width * np.sin(phi)
            else:
                angles[:, limb, 0] = rng.uniform(-10, 10) * deg
                angles[:, limb, 1] = angles[:, limb, 0] + rng.uniform(0, 20) * deg
        for leg, sign in ((2, 1), (3, -1)):
            angles[:, leg, :] = sign * rng.uniform(2, 8) * deg
    elif action == "clap":
        freq = rng.uniform(1 / 8, 1 / 4)
        s = (1 - np.cos(2 * np.pi * freq * t + phase)) / 2  # (n,) 0: hands together
        open_ = rng.uniform(35, 55) * deg
        upper = rng.uniform(25, 45) * deg  # the elbows low, the hands meet before the chest
        fore = rng.uniform(80, 100) * deg  # the forearms about level
        for limb, sign in ((0, 1), (1, -1)):  # the near hand swings forward, the far one back
            angles[:, limb, 0] = upper + sign * 0.6 * open_ * s
            angles[:, limb, 1] = fore
        for leg, sign in ((2, 1), (3, -1)):
            angles[:, leg, :] = sign * rng.uniform(2, 8) * deg
    elif action == "box":
        freq = rng.uniform(1 / 12, 1 / 7)
        phi = 2 * np.pi * freq * t + phase
        guard_upper, guard_lower = rng.uniform(20, 40) * deg, rng.uniform(140, 165) * deg
        reach = rng.uniform(80, 95) * deg
        for limb, punch in ((0, np.maximum(0, np.sin(phi))), (1, np.maximum(0, -np.sin(phi)))):
            punch = punch**2
            angles[:, limb, 0] = guard_upper + (reach - guard_upper) * punch
            angles[:, limb, 1] = guard_lower + (reach - guard_lower) * punch
        stance = rng.uniform(10, 20) * deg
        angles[:, 2, 0], angles[:, 3, 0] = stance, -stance
        angles[:, 2, 1], angles[:, 3, 1] = stance - 10 * deg, -stance - 10 * deg
        lean[:] = rng.uniform(0, 10) * deg
        lift[:] = 0.01 * np.abs(np.sin(2 * phi))
    elif action in ("sit down", "kneel down"):
        duration = n - 1 if fill else rng.uniform(0.55, 0.85) * n
        start = rng.uniform(0, n - duration)
        u = _smooth((t - start) / duration)  # (n,) 0 standing .. 1 seated or kneeling
        if action == "kneel down":  # the near leg's thigh forward, the far knee on the ground
            legs = rng.uniform([75, -5, 0, 80], [90, 5, 10, 95]) * [1, 1, -1, -1] * deg  # (4,)
            angles[:, 2:] = legs.reshape(2, 2) * u[:, None, None]
            for limb, spread in ((0, 6), (1, -6)):  # the hands drop towards the knee
                angles[:, limb, 0] = (rng.uniform(10, 25) + spread) * deg * u
                angles[:, limb, 1] = angles[:, limb, 0] + rng.uniform(0, 20) * deg * u
            lean[:] = rng.uniform(8, 18) * deg * np.sin(np.pi * u) + rng.uniform(-4, 6) * deg * u
            return angles, lean, lift, speed
        thigh = rng.uniform(80, 95) * deg
        for leg, spread in ((2, 4), (3, -4)):
            angles[:, leg, 0] = (thigh + spread * deg) * u
            angles[:, leg, 1] = rng.uniform(-8, 4) * deg * u
        for limb, spread in ((0, 8), (1, -4)):
            angles[:, limb, 0] = (rng.uniform(30, 50) + spread) * deg * u
            angles[:, limb, 1] = angles[:, limb, 0] + rng.uniform(10, 40) * deg * u
        lean[:] = rng.uniform(20, 35) * deg * np.sin(np.pi * u) + rng.uniform(0, 8) * deg * u
    else:
        raise BpttError(f"action must be one of {', '.join(ACTIONS)}; got {action!r}")
    return angles, lean, lift, speed


def _joints(actor: Actor, angles, lean, lift) -> np.ndarray:
    """Joint positions (n, J, 2) in body units, x forward, y down, feet planted at y = 0.

    The hip sits so the lower foot touches the ground (plus ``lift``); for actions
    without a forward speed the feet's mean x stays put (no sliding).
    """
    n = len(lean)
    unit = lambda a: np.stack([np.sin(a), np.cos(a)], axis=-1)  # noqa: E731 (…, 2), 0 = down
    j = np.zeros((n, 11, 2))  # (n, J, 2)
    j[:, 1] = -actor["torso"] * unit(lean)  # neck, above the hip, leaning forward
    j[:, 2] = j[:, 1] - (actor["neck"] + actor["head"]) * unit(lean)
    for limb, (elbow, hand) in enumerate(((3, 5), (4, 6))):
        j[:, elbow] = j[:, 1] + actor["upper_arm"] * unit(angles[:, limb, 0])
        j[:, hand] = j[:, elbow] + actor["forearm"] * unit(angles[:, limb, 1])
    for limb, (knee, foot) in zip((2, 3), ((7, 9), (8, 10)), strict=True):
        j[:, knee] = actor["thigh"] * unit(angles[:, limb, 0])
        j[:, foot] = j[:, knee] + actor["shin"] * unit(angles[:, limb, 1])
    ground = j[:, 9:11, 1].max(axis=1)  # (n,) the lower foot's depth below the hip
    j[:, :, 1] -= (ground + lift)[:, None]
    return j


def action_joints(actions, lengths, actor: Actor, rng: np.random.Generator) -> np.ndarray:
    """Joints (T, J, 2) of ``actions`` done one after another for ``lengths`` frames each,
    in body units, x forward; the figure walks on from where the last action left it
    (with two or more, a transition fills its frames: see :func:`_poses`)."""
    parts, x0 = [], 0.0
    for action, n in zip(actions, lengths, strict=True):
        angles, lean, lift, speed = _poses(action, n, rng, fill=len(actions) > 1)
        j = _joints(actor, angles, lean, lift)  # (n, J, 2)
        travel = x0 + np.cumsum(speed) - speed[0]  # (n,)
        if speed.any():
            j[:, :, 0] += travel[:, None]
        else:
            j[:, :, 0] += x0 - j[:, 9:11, 0].mean(axis=1)[:, None]  # feet stay put
        x0 = float(j[-1, 0, 0] if speed.any() else x0) + float(speed[-1])
        parts.append(j)
    return np.concatenate(parts)  # (T, J, 2)


# ---------------------------------------------------------------- drawing
_GRID = np.stack(np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5, indexing="xy"), -1)


def _segments_ink(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """Coverage (n, K, S, S) in [0, 1] of K thick segments a -> b (n, K, 2) in pixels."""
    gx, gy = _GRID[..., 0].reshape(-1).astype(np.float32), _GRID[..., 1].reshape(-1)  # (P,)
    a, b = a.astype(np.float32)[..., None], b.astype(np.float32)[..., None]  # (n, K, 2, 1)
    ax, ay, dx, dy = a[:, :, 0], a[:, :, 1], b[:, :, 0] - a[:, :, 0], b[:, :, 1] - a[:, :, 1]
    px, py = gx - ax, gy.astype(np.float32) - ay  # (n, K, P) pixel relative to a
    u = np.clip((px * dx + py * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)  # (n, K, P)
    px -= u * dx
    py -= u * dy
    ink = np.clip(np.float32(width / 2 + 0.5) - np.sqrt(px * px + py * py), 0, 1)  # (n, K, P)
    return ink.reshape(*ink.shape[:2], SIZE, SIZE)


def _disc_ink(c: np.ndarray, r: float, ring: float | None = None) -> np.ndarray:
    """Coverage (n, S, S) of discs (or rings of width ``ring``) of radius r at c (n, 2)."""
    d = np.linalg.norm(_GRID[None] - c[:, None, None, :], axis=-1)  # (n, S, S)
    ink = np.clip(r + 0.5 - d, 0, 1)
    if ring is not None:
        ink = np.minimum(ink, np.clip(d - (r - ring) + 0.5, 0, 1))
    return ink


def draw_figure(px: np.ndarray, actor: Actor, head_r: float) -> np.ndarray:
    """Ink (T, S, S) in [0, 1] of the figure whose joints are ``px`` (T, J, 2) in pixels."""
    a, b, shade = (np.array(column) for column in zip(*SEGMENTS, strict=True))  # (K,) each
    ink = (_segments_ink(px[:, a], px[:, b], actor.thickness) * shade[:, None, None]).max(axis=1)
    ring = None if actor.filled_head else max(1.0, actor.thickness)
    return np.maximum(ink, _disc_ink(px[:, 2], head_r, ring))  # (T, S, S)


def _extent(px: np.ndarray, head_r: float, reach: float):
    """The ink's lowest and highest pixel (2,) each and the slack (2,) left in the frame."""
    lo = np.minimum(px.min(axis=(0, 1)), px[:, 2].min(axis=0) - head_r) - reach  # (2,)
    hi = np.maximum(px.max(axis=(0, 1)), px[:, 2].max(axis=0) + head_r) + reach  # (2,)
    return lo, hi, (SIZE - 2 * MARGIN) - (hi - lo)


def render(actions, lengths, actor: Actor, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A clip (T, S, S) uint8 of ``actor`` doing ``actions`` for ``lengths`` frames each,
    with its camera and clutter drawn from ``rng``; and what was drawn (for tests)."""
    joints = action_joints(actions, lengths, actor, rng)  # (T, J, 2) body units
    height = rng.uniform(*HEIGHT_PX)
    if rng.random() < 0.5:  # facing left
        joints[:, :, 0] *= -1
    reach = actor.thickness / 2 + 0.5
    _, _, room = _extent(joints, actor["head"], 0.0)  # at 1 px per unit: SIZE - 2 MARGIN - span
    tall = SIZE - 2 * MARGIN - room[1]  # (units) head top to lowest foot, jumps included
    height = min(height, 0.999 * (SIZE - 2 * MARGIN - 2 * reach) / tall)  # a high jump: smaller
    px = joints * height  # (T, J, 2) pixels, relative
    head_r = actor["head"] * height
    # A long walk would leave the frame: the camera then follows the hip, keeping the
    # largest share k of its travel that still fits (k = 0 keeps the hip in place).
    follow = (px[:, 0, 0] - px[0, 0, 0])[:, None]  # (T, 1)
    k = 1.0
    if _extent(px, head_r, reach)[2][0] < 0:
        lo_k, hi_k = 0.0, 1.0
        for _ in range(30):  # bisection: the width grows with k
            mid = (lo_k + hi_k) / 2
            px[:, :, 0] -= (1 - mid) * follow
            fits = _extent(px, head_r, reach)[2][0] >= 0
            px[:, :, 0] += (1 - mid) * follow
            lo_k, hi_k = (mid, hi_k) if fits else (lo_k, mid)
        k = lo_k
        px[:, :, 0] -= (1 - k) * follow
    lo, hi, room = _extent(px, head_r, reach)
    if (room < 0).any():
        raise BpttError(f"internal: a figure {hi - lo} px wide does not fit {SIZE} px")
    offset = MARGIN - lo + rng.uniform(0, 1, 2) * room  # (2,)
    px = px + offset
    figure = draw_figure(px, actor, head_r)  # (T, S, S)

    T = len(px)
    background = np.full((SIZE, SIZE), rng.uniform(0.0, 0.25))  # (S, S)
    for _ in range(int(rng.integers(2, 5))):  # static shapes
        c = rng.uniform(0, SIZE, (1, 2))
        level = rng.uniform(0.2, 0.55)
        if rng.random() < 0.5:
            shape = _disc_ink(c, rng.uniform(1.5, 3.5))[0]
        else:
            half = rng.uniform(1, 3.5, 2)
            shape = (np.abs(_GRID - c[0]) <= half).all(-1).astype(float)
        background = np.maximum(background, level * shape)
    frames = np.repeat(background[None], T, axis=0)  # (T, S, S)
    if rng.random() < 0.7:  # a moving ball, bouncing off the edges
        pos, vel = rng.uniform(2, SIZE - 2, 2), rng.uniform(-1.5, 1.5, 2)
        track = pos + vel * np.arange(T)[:, None]  # (T, 2)
        track = (SIZE - 4) - np.abs((track - 2) % (2 * (SIZE - 4)) - (SIZE - 4)) + 2
        ball = rng.uniform(0.35, 0.8) * _disc_ink(track, rng.uniform(1.0, 2.2))  # (T, S, S)
        frames = np.maximum(frames, ball)
    brightness = rng.uniform(0.7, 1.0)
    frames = figure * brightness + (1 - figure) * frames
    bar = None
    if rng.random() < 0.25:  # an occluding bar across the figure's path, all frames
        width = rng.uniform(1.5, 3.5)
        centre = rng.uniform(px[..., 0].min(), px[..., 0].max())
        bar = (centre, width)
        cover = np.clip(width / 2 + 0.5 - np.abs(_GRID[..., 0] - centre), 0, 1)  # (S, S)
        frames = cover * rng.uniform(0.1, 0.5) + (1 - cover) * frames
    frames = frames + rng.normal(0, rng.uniform(0, 0.05), frames.shape)
    clip = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)  # (T, S, S)
    return clip, {"joints": px, "head_radius": head_r, "reach": reach, "bar": bar}


# ---------------------------------------------------------------- clips and sets
def render_clip(kind: str, split: str, index: int, seed: int = 0):
    """Clip ``index`` of a set: (frames (T, S, S) uint8, frame labels (T,), actor, info).
    "single": one action (index mod 11: a set is balanced), T in 20..28 frames, a single
    "stand up" ("get up") being "sit down" ("kneel down") reversed; "pair": two different
    actions one after the other, T = 32, the change at frame 10..22."""
    if kind not in KINDS:
        raise BpttError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    cast = actors(split)
    rng = np.random.default_rng([seed, KINDS.index(kind), SPLITS.index(split), index])
    actor = make_actor(cast[int(rng.integers(len(cast)))])
    if kind == "single":
        action = index % len(ACTIONS)
        T = int(rng.integers(FRAMES[0], FRAMES[1] + 1))
        drawn = ACTIONS.index(REVERSED.get(ACTIONS[action], ACTIONS[action]))
        clip, info = render([ACTIONS[drawn]], [T], actor, rng)
        if drawn != action:
            clip, info["joints"] = clip[::-1].copy(), info["joints"][::-1]
        labels = np.full(T, action, dtype=np.int64)  # (T,)
    else:
        first, second = rng.choice(len(ACTIONS), 2, replace=False)
        cut = int(rng.integers(10, PAIR_FRAMES - 10 + 1))
        lengths = [cut, PAIR_FRAMES - cut]
        clip, info = render([ACTIONS[first], ACTIONS[second]], lengths, actor, rng)
        labels = np.repeat(np.array([first, second], dtype=np.int64), lengths)  # (T,)
    return clip, labels, actor, info


@dataclass
class ClipSet:
    """Rendered clips: frames[i] (T_i, S, S) uint8, labels[i] (T_i,), actors[i]."""

    frames: list[np.ndarray]
    labels: list[np.ndarray]
    actors: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def set_key(kind: str, split: str, count: int, seed: int) -> str:
    """A hash of what fixes a set: the generator's version, its constants and the arguments."""
    sizes = dict(size=SIZE, frames=FRAMES, pair=PAIR_FRAMES, height=HEIGHT_PX)
    head = dict(version=GENERATOR_VERSION, actors=NUM_ACTORS, actor_seed=ACTOR_SEED, **sizes)
    blob = json.dumps([head, kind, split, count, seed], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def make_clips(kind: str, split: str, count: int, seed: int = 0, folder=None) -> ClipSet:
    """Clips 0..count-1 of a set, rendered once and cached in ``folder`` (default
    ``cache_dir("video")``) as one ``.npz`` written under a temporary name and renamed."""
    if count < 1:
        raise BpttError(f"a clip set needs at least one clip; got count={count}")
    root = Path(folder).expanduser() if folder else cache_dir("video")
    path = root / f"{kind}-{split}-{count}-{set_key(kind, split, count, seed)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                lengths, frames = saved["lengths"], saved["frames"]  # (N,), (ΣT, S, S)
                labels, cast = saved["labels"], saved["actors"]  # (ΣT,), (N,)
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"cannot read the cached clips '{path}': {e}") from None
        cuts = np.cumsum(lengths)[:-1]
        return ClipSet(np.split(frames, cuts), np.split(labels, cuts), cast)
    made = [render_clip(kind, split, i, seed) for i in range(count)]
    frames, labels, cast, _ = zip(*made, strict=True)
    clips = ClipSet(list(frames), list(labels), np.array([actor.index for actor in cast]))
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=root)
        with os.fdopen(fd, "wb") as f:
            lengths = np.array([len(c) for c in clips.frames])
            frames, labels = np.concatenate(clips.frames), np.concatenate(clips.labels)
            np.savez(f, lengths=lengths, frames=frames, labels=labels, actors=clips.actors)
        os.replace(tmp, path)  # atomic: the set appears whole or not at all
    except OSError as e:
        print(f"note: cannot cache the clips in '{root}': {e.strerror}; rendered only")
    return clips
