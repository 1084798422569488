"""Configuration of the VLA policy, saved as `config.json` beside its weights (LeRobot-style)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

CAMERA_KEYS = ("observation.images.head", "observation.images.left_wrist", "observation.images.right_wrist")
STATE_KEY = "observation.state"
ENV_KEY = "observation.environment_state"
TASK_KEY = "task"
CONFIG_NAME = "config.json"


class VLAConfig(BaseModel):
    """Sizes of the model and of what it reads and writes.

    Defaults follow the compute budget in DESIGN.md: small images, 16-64 channels, d=128,
    two transformer layers and a 20-step action chunk train at a few hundred samples/s on
    two CPU cores and infer a chunk in a few milliseconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "vla"
    image_keys: tuple[str, ...] = CAMERA_KEYS
    image_size: tuple[int, int] = Field((64, 80), description="(height, width) images are resized to")
    state_dim: int = Field(52, ge=1)
    action_dim: int = Field(19, ge=1)
    env_state_dim: int = Field(
        0, ge=0,
        description="size of `observation.environment_state` (the navigation goal, see policy.navigation_goal); "
        "0: the policy does not read it",
    )
    chunk_size: int = Field(20, ge=1, le=200, description="H: actions predicted per chunk")
    n_action_steps: int = Field(10, ge=1, description="actions executed from a chunk before predicting the next")
    channels: tuple[int, ...] = Field((16, 32, 64), description="per conv stage of the image encoder")
    grid: tuple[int, int] = Field((3, 4), description="spatial tokens per camera after pooling")
    text_dim: int = Field(384, description="MiniLM sentence embedding size")
    d_model: int = Field(128, ge=16)
    n_heads: int = Field(4, ge=1)
    n_layers: int = Field(2, ge=1)
    dim_feedforward: int = Field(256, ge=16)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    relative_actions: tuple[tuple[int, int], ...] = Field(
        (),
        description="(action index, state index) pairs: these action entries are predicted as offsets from the "
        "state entry observed with the chunk (e.g. a hand's position target from the hand's measured position), "
        "so slow, precise motions are not lost in the spread of absolute targets across the room",
    )

    target_hand_state: tuple[int, ...] = Field(
        (),
        description="state indices of the two hands' positions (left x, y, z, right x, y, z, base frame): the "
        "model then also reads the manipulation target's offset from each hand (the last four entries of "
        "`observation.environment_state` are the target, see policy.manipulation_target), the reach itself, "
        "so it need not learn to subtract one input from another",
    )

    target_anchor: bool = Field(
        False,
        description="while a manipulation target is given, the position targets of the hand nearer to it are "
        "predicted as offsets from the target point instead of from the hand (`relative_actions`), with their "
        "own normalisation: the reach is then the model's output by construction, where an input it may ignore "
        "(session 11) is not. Needs `target_hand_state` and the hands' positions among `relative_actions`",
    )

    @property
    def hand_actions(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Action indices of the left and right hands' position targets (x, y, z): the relative
        actions anchored at the hand positions `target_hand_state` names."""
        by_state = {s: a for a, s in self.relative_actions}
        idx = self.target_hand_state
        return (tuple(by_state[s] for s in idx[:3]), tuple(by_state[s] for s in idx[3:]))  # type: ignore[return-value]

    @property
    def env_input_dim(self) -> int:
        """Width of the model's environment-state input: the entries given, plus the target's
        offsets from the two hands when `target_hand_state` names them."""
        return self.env_state_dim + (6 if self.target_hand_state else 0)

    @model_validator(mode="after")
    def _consistent(self) -> VLAConfig:
        if self.target_hand_state and (len(self.target_hand_state) != 6 or self.env_state_dim < 4
                                       or not all(0 <= i < self.state_dim for i in self.target_hand_state)):
            raise ValueError(f"target_hand_state names six state indices below state_dim {self.state_dim} and needs the "
                             f"target in the environment state; got {self.target_hand_state} with env_state_dim "
                             f"{self.env_state_dim}")
        if self.target_anchor and (not self.target_hand_state
                                   or not set(self.target_hand_state) <= {s for _, s in self.relative_actions}):
            raise ValueError("target_anchor predicts a hand's position from the manipulation target: it needs "
                             f"target_hand_state (got {self.target_hand_state}) and those hand positions among "
                             f"relative_actions (got {self.relative_actions})")
        if self.n_action_steps > self.chunk_size:
            raise ValueError(f"n_action_steps ({self.n_action_steps}) cannot exceed chunk_size ({self.chunk_size})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not self.image_keys:
            raise ValueError("image_keys must name at least one camera")
        for a, s in self.relative_actions:
            if not (0 <= a < self.action_dim and 0 <= s < self.state_dim):
                raise ValueError(f"relative_actions pair ({a}, {s}) is outside action_dim {self.action_dim} / state_dim {self.state_dim}")
        return self

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> VLAConfig:
        return cls.model_validate_json((directory / CONFIG_NAME).read_text())
