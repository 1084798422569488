"""The VLA checkpoint in the repository: it loads, reads what the world gives and acts sanely."""

from __future__ import annotations

import numpy as np
import pytest

from agent.session import DEFAULT_CHECKPOINT
from policy.vla import VLAPolicy
from scenarios.world import SimWorld


@pytest.fixture(scope="module")
def shipped() -> VLAPolicy:
    assert (DEFAULT_CHECKPOINT / "model.safetensors").exists(), "the default checkpoint must ship with the repository"
    return VLAPolicy.from_pretrained(DEFAULT_CHECKPOINT)


def test_the_shipped_checkpoint_is_small_and_matches_the_world(shipped: VLAPolicy):
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size < 10 * 2**20, f"{size / 2**20:.1f} MiB: the repository ships a few MB, not more"
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=0)
    world.close()
    for key in shipped.config.image_keys:
        assert key in obs, f"the checkpoint reads {key}, which the world does not give"
    assert shipped.config.state_dim == obs["observation.state"].shape[0]
    assert shipped.config.action_dim == world.action_space.shape[0]


def test_the_shipped_checkpoint_acts_within_the_action_space(shipped: VLAPolicy):
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=1)
    obs["task"] = "pick up the red cup"
    shipped.reset()
    chunk = shipped.predict_action_chunk(obs)
    assert chunk.shape == (shipped.config.chunk_size, shipped.config.action_dim) and np.isfinite(chunk).all()
    low, high = world.action_space.low, world.action_space.high
    span = high - low
    assert ((chunk >= low - 0.05 * span) & (chunk <= high + 0.05 * span)).all(), "actions far outside the action space"
    for _ in range(3):  # the queue serves n_action_steps actions per chunk and stays in step with the world
        obs, *_ = world.step(shipped.select_action({**obs, "task": "pick up the red cup"}))
    world.close()


def test_the_shipped_checkpoint_drives_where_its_goal_says(shipped: VLAPolicy):
    """It reads navigate_to's goal (policy.navigation_goal), and the goal steers the base. Seen
    mid-drive (the expert's first 3.5 s to the counter), the same view with the goal ahead or
    behind, to the left or to the right, gives faster or slower, leftward or rightward commands."""
    from policy.expert import ScriptedExpert
    from policy.navigation_goal import ENV_DIM, GOAL_DIM, GOAL_KEY

    assert shipped.config.env_state_dim in (GOAL_DIM, ENV_DIM)
    pad = [0.0] * (shipped.config.env_state_dim - GOAL_DIM)  # no manipulation target while driving
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=2)
    expert = ScriptedExpert(world, "navigate_to", ["counter"])
    expert.reset()
    for _ in range(70):
        obs, *_ = world.step(expert.select_action(obs))
    world.close()
    obs["task"] = "go to the counter"

    def base(goal: list[float]) -> np.ndarray:  # mean (vx, vy, wz) over the chunk's executed part
        shipped.reset()
        return shipped.predict_action_chunk({**obs, GOAL_KEY: np.array(goal + pad, np.float32)})[:10, :3].mean(0)

    ahead, behind = base([1, 0.6, 0, 2, 0, 1, 0]), base([1, -0.6, 0, -2, 0, -1, 0])
    left, right = base([1, 0.3, 0.52, 0.75, 1.3, 1, 0]), base([1, 0.3, -0.52, 0.75, -1.3, 1, 0])
    assert ahead[0] - behind[0] > 0.1, (ahead, behind)
    assert left[1] - right[1] > 0.05, (left, right)


def test_the_shipped_checkpoint_hands_over_where_the_palm_is(shipped: VLAPolicy):
    """It predicts the hand nearer the manipulation target from the target (VLAConfig.target_anchor):
    the same view with the person's palm told 10 cm further away sends that hand 10 cm further."""
    from policy.navigation_goal import ENV_DIM, GOAL_DIM, GOAL_KEY

    assert shipped.config.env_state_dim == ENV_DIM and shipped.config.target_anchor
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=3)
    world.close()
    obs["task"] = "hand the red cup to the person"
    left = obs["observation.state"][list(shipped.config.target_hand_state[:3])]
    palm = left + np.array([0.25, -0.05, -0.1])  # in front of the left hand (base frame), nearer it than the right

    def hand(target: np.ndarray) -> np.ndarray:
        env = np.zeros(ENV_DIM, np.float32)
        env[GOAL_DIM:] = [1.0, *target]
        shipped.reset()
        return shipped.predict_action_chunk({**obs, GOAL_KEY: env})[:, list(shipped.config.hand_actions[0])]

    moved = hand(palm + [0.1, 0.0, 0.0]) - hand(palm)
    np.testing.assert_allclose(moved[:, 0], 0.1, atol=0.03)
    assert np.abs(moved[:, 1:]).max() < 0.03
