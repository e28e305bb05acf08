"""The action-clip generator: deterministic by seed, split by actor, the figure in frame,
"stand up" the reverse of "sit down", two-action clips, the cache."""

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.tasks.video import video_clips as vc


def test_the_same_seed_draws_the_same_clip_and_another_seed_another():
    a, labels_a, actor_a, _ = vc.render_clip("single", "train", 7, seed=3)
    b, labels_b, actor_b, _ = vc.render_clip("single", "train", 7, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(labels_a, labels_b)
    assert actor_a == actor_b and a.dtype == np.uint8 and a.shape[1:] == (vc.SIZE, vc.SIZE)
    c, *_ = vc.render_clip("single", "train", 7, seed=4)
    assert c.shape != a.shape or not np.array_equal(a, c)


def test_the_split_is_by_actor_and_no_test_body_is_seen_in_training():
    cast = {s: vc.actors(s) for s in vc.SPLITS}
    assert sum(map(len, cast.values())) == vc.NUM_ACTORS
    assert not set(cast["train"]) & set(cast["test"]) and not set(cast["train"]) & set(
        cast["validation"]
    )
    train_bodies = {vc.make_actor(a).lengths for a in cast["train"]}
    assert not train_bodies & {vc.make_actor(a).lengths for a in cast["test"]}
    for split in vc.SPLITS:
        for i in range(12):
            _, _, actor, _ = vc.render_clip("single", split, i)
            assert vc.actor_split(actor.index) == split
    with pytest.raises(BpttError, match="split must be one of train, validation, test"):
        vc.actors("dev")


@pytest.mark.parametrize("kind", vc.KINDS)
def test_the_figure_stays_inside_the_frame(kind):
    for i in range(45):  # every action, several times (run and walk need the camera to pan)
        clip, labels, _actor, info = vc.render_clip(kind, "train", i)
        px, r, reach = info["joints"], info["head_radius"], info["reach"]
        assert len(clip) == len(labels) == len(px)
        assert px.min() - reach >= 0 and px.max() + reach <= vc.SIZE
        head = px[:, 2]
        assert (head - r - reach).min() >= 0 and (head + r + reach).max() <= vc.SIZE


def test_single_clips_cycle_through_the_actions_and_stand_up_reverses_sit_down():
    labels = [vc.render_clip("single", "train", i)[1] for i in range(len(vc.ACTIONS))]
    assert [int(y[0]) for y in labels] == list(range(len(vc.ACTIONS)))
    assert all((y == y[0]).all() and vc.FRAMES[0] <= len(y) <= vc.FRAMES[1] for y in labels)
    for up, down in vc.REVERSED.items():
        for i in range(3):
            index = vc.ACTIONS.index(up) + i * len(vc.ACTIONS)
            _clip, _, _, info = vc.render_clip("single", "train", index)
            hip = info["joints"][:, 0, 1]  # (T,) pixels, y down: the hip rises as it gets up
            assert hip[0] - hip[-1] > 2.0, (up, i)
            _clip, _, _, info = vc.render_clip("single", "train", vc.ACTIONS.index(down))
            hip = info["joints"][:, 0, 1]
            assert hip[-1] - hip[0] > 2.0, down


def test_waving_raises_a_hand_above_the_head_and_clapping_keeps_both_below_it():
    """The arm actions differ in the joints, not only in tempo: a wave's hand rises above
    the head's centre, a clap's hands stay below it and part (by 2+ px) and meet."""
    for i in range(6):
        n = len(vc.ACTIONS)
        _, _, _, wave = vc.render_clip("single", "train", vc.ACTIONS.index("wave one hand") + i * n)
        _, _, _, clap = vc.render_clip("single", "train", vc.ACTIONS.index("clap") + i * n)
        j = wave["joints"]  # (T, J, 2) pixels, y down
        assert (j[:, 5:7, 1].min(axis=1) < j[:, 2, 1]).all()
        j = clap["joints"]
        assert (j[:, 5:7, 1] > j[:, 2, 1, None]).all()
        gap = np.linalg.norm(j[:, 5] - j[:, 6], axis=1)  # (T,) between the hands
        assert gap.max() > 2.0 and gap.min() < gap.max() / 2, gap


def test_two_action_clips_change_once_and_a_transition_fills_its_frames():
    sit, stand = vc.ACTIONS.index("sit down"), vc.ACTIONS.index("stand up")
    seen = set()
    for i in range(60):
        clip, labels, _, info = vc.render_clip("pair", "test", i)
        assert len(clip) == vc.PAIR_FRAMES
        changes = np.flatnonzero(np.diff(labels))
        assert len(changes) == 1 and 10 <= changes[0] + 1 <= vc.PAIR_FRAMES - 10
        hip = info["joints"][:, 0, 1]  # (T,) pixels, y down
        for action, sign in ((sit, 1), (stand, -1)):  # the hip moves all through the segment
            frames = np.flatnonzero(labels == action)
            if len(frames):
                seen.add(action)
                first, mid, last = hip[frames[[0, len(frames) // 2, -1]]]
                assert sign * (mid - first) > 0.5 and sign * (last - mid) > 0.5, (i, hip)
    assert seen == {sit, stand}


def test_a_set_is_cached_and_read_back_equal(tmp_path):
    made = vc.make_clips("single", "validation", 4, seed=1, folder=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*"))  # no temporary left behind
    again = vc.make_clips("single", "validation", 4, seed=1, folder=tmp_path)
    for a, b in zip(made.frames + made.labels, again.frames + again.labels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(made.actors, again.actors)
    np.testing.assert_array_equal(made.frames[2], vc.render_clip("single", "validation", 2, 1)[0])
