"""Leaves: predicate conditions checked against perception's belief, and the skill leaf that
runs a policy in closed loop, one control step per tick (py_trees' asynchronous action idiom:
`initialise` starts, `update` polls and never blocks, `terminate` cancels)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import py_trees
from py_trees.common import Status

from behaviors import blackboard as bbk
from behaviors.clock import StallDetector
from behaviors.context import RunContext
from perception.belief import Belief, ObjectBelief
from planner.taskgraph import Subtask
from scenarios.predicates import Predicate

STALL_SAMPLE_S = 0.2
"""The stall detector looks at progress this often (simulated seconds)."""


def unmet(belief: Belief | None, predicates: Sequence[Predicate], threshold: float) -> list[tuple[Predicate, float]]:
    """The predicates not believed true with at least `threshold` confidence, with the belief
    that each is true. Mirrors `Belief.holds` on pre-split keys: it runs every tick."""
    out = []
    probs = belief.predicates if belief is not None else {}
    for p in predicates:
        key, negated = _key(p)
        prob = probs.get(key)
        if prob is None:  # no evidence: false (a negated predicate: true, with confidence 0)
            out.append((p, 0.0))
            continue
        truth = (prob >= 0.5) != negated
        confidence = prob if prob >= 0.5 else 1.0 - prob
        if not (truth and confidence >= threshold):
            out.append((p, 1.0 - prob if negated else prob))
    return out


_KEYS: dict[Predicate, tuple[str, bool]] = {}


def _key(p: Predicate) -> tuple[str, bool]:
    k = _KEYS.get(p)
    if k is None:
        k = _KEYS[p] = (str(p.positive()), p.negated)
    return k


PHYSICAL = frozenset({"holding", "on", "in", "given"})


def _physical(predicates: Sequence[Predicate]) -> bool:
    """Effects that are stable only once the motion is over (an object lifted, released, let go);
    `visible` and `near` are stable as soon as they hold."""
    return any(p.name in PHYSICAL and not p.negated for p in predicates)


def _arrives(predicates: Sequence[Predicate]) -> bool:
    """Skills that end with the robot near something: a learned one should end where it stops."""
    return any(p.name == "near" and not p.negated for p in predicates) and not _physical(predicates)


def _out_of_hand(belief: Belief | None, objects: Sequence[str], threshold: float) -> bool:
    """Every object believed out of the hand with `threshold` confidence; an object with no
    `holding` evidence at all counts as out (unlike `unmet`'s negated predicates)."""
    probs = belief.predicates if belief is not None else {}
    return bool(objects) and all(probs.get(f"holding({o})", 0.0) <= 1.0 - threshold for o in objects)


def _moved(pose: np.ndarray, anchor: np.ndarray, tol: float) -> bool:
    """Whether a base pose (x, y, yaw) is more than `tol` (m, and the same in rad) from `anchor`."""
    turned = abs((pose[2] - anchor[2] + np.pi) % (2 * np.pi) - np.pi)
    return bool(np.hypot(*(pose[:2] - anchor[:2])) > tol or turned > tol)


def _state_moved(state: np.ndarray, anchor: np.ndarray, tol: float) -> bool:
    """Whether any entry of the robot's own state (`observation.state`) is more than `tol` from `anchor`."""
    return state.shape != anchor.shape or bool(np.max(np.abs(state - anchor), initial=0.0) > tol)


class StillTimer:
    """Seconds a sensed vector has stayed within a tolerance of where its current still spell began."""

    def __init__(self, moved: Callable[[np.ndarray, np.ndarray, float], bool], tol: float) -> None:
        self.moved, self.tol = moved, tol
        self.anchor: np.ndarray | None = None
        self.since = 0.0

    def reset(self) -> None:
        self.anchor = None

    def still_for(self, value: np.ndarray | None, now: float) -> float:
        if value is None:
            return 0.0
        value = np.asarray(value, dtype=np.float64)
        if self.anchor is None or self.moved(value, self.anchor, self.tol):
            self.anchor, self.since = value, now
        return now - self.since


def _names(predicates: Sequence[Predicate]) -> str:
    return ", ".join(str(p) for p in predicates) or "nothing"


class PredicateCondition(py_trees.behaviour.Behaviour):
    """SUCCESS when every predicate holds in the belief with enough confidence.

    With `wait_s` > 0 it stays RUNNING that many simulated seconds for the predicates to show
    up (perception may need a frame or two), then fails. `record` adds the failure's reason
    to the blackboard; the "already done?" check of a subtask fails routinely and does not.
    """

    def __init__(self, name: str, predicates: Sequence[Predicate], ctx: RunContext, subtask_id: str | None,
                 wait_s: float = 0.0, record: bool = True) -> None:
        super().__init__(name=name)
        self.predicates = tuple(predicates)
        self.ctx = ctx
        self.subtask_id = subtask_id
        self.wait_s = wait_s
        self.record = record
        self.bb = bbk.attach(self, ctx.namespace, read=(bbk.BELIEF,), write=(bbk.FAILURES,) if record else ())
        self._since = 0.0

    def initialise(self) -> None:
        self._since = self.ctx.clock()

    def update(self) -> Status:
        missing = unmet(self.bb.belief, self.predicates, self.ctx.config.confidence)
        if not missing:
            self.feedback_message = "holds"
            return Status.SUCCESS
        text = ", ".join(f"{p} ({c:.2f})" for p, c in missing)
        if self.ctx.clock() - self._since < self.wait_s - 1e-9:
            self.feedback_message = f"waiting for {text}"
            return Status.RUNNING
        self.feedback_message = f"not believed: {text}"
        if self.record:
            bbk.record_failure(self.bb, bbk.FailureRecord(subtask=self.subtask_id, node=self.name,
                                                           reason=f"{text} not believed true (threshold {self.ctx.config.confidence:g})",
                                                           time=self.ctx.clock()))
        return Status.FAILURE


class SkillLeaf(py_trees.behaviour.Behaviour):
    """Runs the subtask's policy: each tick one action to the world, RUNNING until perception
    confirms every success predicate (SUCCESS), FAILURE when the policy gives up or nothing
    has progressed for `stall_s` (see `StallDetector` for what counts as progress).
    The attempt's timeout is the enclosing `WorldTimeout`'s job.

    Confirmation: the predicates must stay believed for `confirm_s` (one-frame flicker does
    not end a skill; gaps up to `belief_gap_s`, a missed detection, do not restart that
    clock or the settling below), and a policy that exposes `done` (the scripted expert) may finish its
    motion first — up to `settle_s` — so a pick is not cut off between closing the fingers
    and lifting the object. A policy without `done` (the VLA) keeps acting for
    `learned_settle_s` after a manipulation effect is first believed, for the same reason, and
    then until the robot's own state has stood still for `learned_settle_still_s` (at most
    `learned_settle_max_s`): its demonstrations ended with the arm at rest in the carry or
    driving posture, which is where the next skill's demonstrations start. A learned release
    (handover, place, place_in) does not wait for stillness once the object is believed out of
    the hand (`learned_release_done`): hands that kept moving went back for what they had let go. On
    a skill that ends near something it keeps driving until its base stands still
    (`learned_arrive_s`, at most `learned_arrive_max_s`): it learnt to stop at the approach pose
    its next skill starts from, which is closer than where `near` first holds."""

    def __init__(self, subtask: Subtask, ctx: RunContext) -> None:
        super().__init__(name=f"{subtask.id} {subtask.label}")
        self.subtask = subtask
        self.ctx = ctx
        self._settles = _physical(subtask.success)  # fixed per subtask: not re-derived every tick
        self._arrives = _arrives(subtask.success)
        self._releases = subtask.releases if self._settles and ctx.config.learned_release_done else ()
        self._base_still = StillTimer(_moved, ctx.config.arrive_still_m)  # the believed base pose
        self._state_still = StillTimer(_state_moved, ctx.config.settle_still_tol)  # observation.state
        self.bb = bbk.attach(self, ctx.namespace, read=(bbk.BELIEF,), write=(bbk.LAST_ACTION, bbk.FAILURES))
        self.stall = StallDetector(ctx.config.stall_s, tolerance=1.0)
        self.policy = None
        self.queue: deque[np.ndarray] = deque()
        self.steps = 0
        self._next_stall_check = 0.0
        self._believed_since: float | None = None
        self._unbelieved_since: float | None = None

    def initialise(self) -> None:
        if self._arrives:
            self.ctx.base_trail = []  # this drive's way, for the reflex before its retry
        self.policy = self.ctx.policy_factory(self.subtask)
        self.policy.reset()
        self.queue.clear()
        self.steps = 0
        self.stall.reset(self.ctx.clock())
        self._next_stall_check = self.ctx.clock()
        self._believed_since = None
        self._unbelieved_since = None
        self._base_still.reset()
        self._state_still.reset()
        self._start_pose: np.ndarray | None = None
        self._moved_at: float | None = None
        self.feedback_message = "started"

    def update(self) -> Status:
        cfg = self.ctx.config
        belief: Belief | None = self.bb.belief
        now = self.ctx.clock()
        if self._arrives:
            self._track_departure(belief, now)
            if belief is not None:
                self.ctx.base_trail.append(tuple(belief.robot.pose))
        if not unmet(belief, self.subtask.success, cfg.confidence):
            self._unbelieved_since = None
            if self._believed_since is None:
                self._believed_since = now
            held = now - self._believed_since
            done = getattr(self.policy, "done", None)  # a policy may say when its motion is over
            limit, waited = cfg.settle_s, held
            if done is None and self._settles:  # a learned policy cannot: manipulation gets time to finish (lift, release, retract)
                state = (self.ctx.obs or {}).get("observation.state")
                still = self._state_still.still_for(state, now)
                done = held >= cfg.learned_settle_s - 1e-9 and (still >= cfg.learned_settle_still_s - 1e-9
                                                                or _out_of_hand(belief, self._releases, cfg.confidence))
                limit = cfg.learned_settle_max_s
            elif done is None and self._arrives:  # ... and driving goes on until the base stops, once it has set off,
                arrived = getattr(self.policy, "arrived", None)  # unless the policy knows how far its goal pose is
                if arrived is None:
                    pose = belief.robot.pose if belief is not None else None
                    arrived = self._moved_at is not None and self._base_still.still_for(pose, now) >= cfg.learned_arrive_s - 1e-9
                done = arrived
                limit = cfg.learned_arrive_max_s
                waited = now - max(self._believed_since, self._moved_at or self._believed_since)
            elif done is None:
                done = True
            elif self._arrives and self.subtask.always_run:  # a drive that starts near its target (a repair's way
                limit = cfg.learned_arrive_max_s  # round to the bin's front): near holds at once, the drive is not over
            if held >= cfg.confirm_s - 1e-9 and (done or waited >= limit - 1e-9):
                self.feedback_message = f"success confirmed after {self.steps} steps"
                return Status.SUCCESS
        else:  # a gap longer than a missed detection or two restarts the clock
            if self._unbelieved_since is None:
                self._unbelieved_since = now
            if now - self._unbelieved_since >= cfg.belief_gap_s - 1e-9:
                self._believed_since = None
        gave_up = getattr(self.policy, "failure", None)
        if gave_up:
            return self._fail(f"the policy gave up: {gave_up}")
        if now >= self._next_stall_check - 1e-9:  # sampled: progress is judged over seconds, not ticks
            self._next_stall_check = now + STALL_SAMPLE_S
            if self.stall.update(now, self._progress(belief)):
                return self._fail(f"stalled: no progress for {self.stall.idle_for(now):.1f} s")
        obs = dict(self.ctx.obs or {})
        obs["task"] = self.subtask.instruction
        if cfg.chunk_actions == 0:
            action = np.asarray(self.policy.select_action(obs))
        else:
            if not self.queue:
                chunk = np.asarray(self.policy.predict_action_chunk(obs))
                self.queue.extend(chunk[: cfg.chunk_actions])
            action = self.queue.popleft()
        self.ctx.step(action)
        self.steps += 1
        self.bb.last_action = {"subtask": self.subtask.id, "step": self.steps, "norm": round(float(np.sqrt(np.dot(action, action))), 4)}
        self.feedback_message = f"step {self.steps}, idle {self.stall.idle_for(now):.1f} s"
        return Status.RUNNING

    def _track_departure(self, belief: Belief | None, now: float) -> None:
        """Note when the base first left its starting pose: a drive trained on the expert's stands
        still while it tucks its arms, and that pause is not an arrival."""
        if belief is None or self._moved_at is not None:
            return
        pose = np.asarray(belief.robot.pose, dtype=np.float64)
        if self._start_pose is None:
            self._start_pose = pose
        elif _moved(pose, self._start_pose, self.ctx.config.depart_m):
            self._moved_at = now

    def terminate(self, new_status: Status) -> None:
        if new_status == Status.INVALID:  # preempted or timed out: cancel; the executor holds the robot
            self.queue.clear()
            if self.policy is not None:
                self.feedback_message = "cancelled"
        overridden = getattr(self.policy, "closed_steps", 0) if self.policy is not None else 0
        if overridden:  # the grip guard kept a hand closed that the policy opened (policy.grip_guard)
            self.ctx.emit("grip_guard", subtask=self.subtask.id, skill=self.subtask.skill, actions=int(overridden))
        regrasps = getattr(self.policy, "regrasps", 0) if self.policy is not None else 0
        if regrasps:  # a pick that closed on a ball past its middle took it again deeper (policy.grasp_depth)
            self.ctx.emit("regrasp", subtask=self.subtask.id, skill=self.subtask.skill, count=int(regrasps),
                          opening_m=round(float(self.policy.opening_m), 4), depth_m=round(float(self.policy.depth_m), 4))
        lifts = getattr(self.policy, "lifts", 0) if self.policy is not None else 0
        if lifts:  # a pick that closed on its object and did not lift it had it lifted (policy.stalled_lift)
            self.ctx.emit("stalled_lift", subtask=self.subtask.id, skill=self.subtask.skill, count=int(lifts),
                          lift_m=round(float(self.policy.lift_m), 4))
        self.policy = None

    def _fail(self, reason: str) -> Status:
        self.feedback_message = reason
        bbk.record_failure(self.bb, bbk.FailureRecord(subtask=self.subtask.id, node=self.name, reason=reason, time=self.ctx.clock()))
        return Status.FAILURE

    def _progress(self, belief: Belief | None) -> np.ndarray:
        """Sensed quantities scaled by their tolerances (so a change > 1 is progress)."""
        cfg = self.ctx.config
        parts = []
        state = (self.ctx.obs or {}).get("observation.state")
        if state is not None:
            parts.append(np.asarray(state, dtype=np.float64).ravel() * (1.0 / cfg.stall_state_tol))
        if belief is not None:
            extra = []
            for arg in self.subtask.args:
                ob = belief.objects.get(arg)
                if ob is not None:
                    extra.extend(v / cfg.stall_position_tol for v in ob.position)
            probs = belief.predicates
            extra.extend(probs.get(_key(p)[0], 0.0) / cfg.stall_confidence_tol for p in self.subtask.success)
            parts.append(np.asarray(extra, dtype=np.float64))
        return np.concatenate(parts) if parts else np.zeros(0)


class PostureLeaf(py_trees.behaviour.Behaviour):
    """The reset reflex before an attempt that follows a failed one, and before the first attempt
    of the skills `BehaviorConfig.posture_reset_first` names (`RunContext.posture_factory`, see
    `policy.posture`): one action per tick until the reflex says `done`, then SUCCESS. Every other
    attempt passes straight through (SUCCESS in the same tick). A learned skill restarted where
    its failure left the robot (arm out, head away from the object) replays the failure, or fails
    its `visible` precondition at once.
    The believed base pose at the subtask's first attempt is kept (`start_pose`) and handed to
    the reflex, which drives a manipulation's base back there."""

    def __init__(self, subtask: Subtask, ctx: RunContext) -> None:
        super().__init__(name=f"{subtask.id} reset posture")
        self.subtask = subtask
        self.ctx = ctx
        self.bb = bbk.attach(self, ctx.namespace, read=(bbk.BELIEF,))
        self.policy = None
        self.steps = 0
        self._started = 0.0
        self.start_pose: tuple[float, float, float] | None = None  # the believed base pose the first attempt began at

    def initialise(self) -> None:
        self.policy = None
        self.steps = 0
        self._started = self.ctx.clock()
        first = self.start_pose is None and self.subtask.skill in self.ctx.config.posture_reset_first
        if (self.ctx.needs_posture_reset or first) and self.ctx.config.posture_reset and self.ctx.posture_factory is not None:
            self.policy = self.ctx.posture_factory(self.subtask)
            if hasattr(self.policy, "start_pose"):
                self.policy.start_pose = self.start_pose
            if hasattr(self.policy, "trail"):
                self.policy.trail = list(self.ctx.base_trail)
            self.policy.reset()
            self.ctx.emit("posture_reset_started", subtask=self.subtask.id, skill=self.subtask.skill)
        self.ctx.needs_posture_reset = False

    def update(self) -> Status:
        if self.policy is None:
            self.feedback_message = "no reset needed"
            self._note_start()
            return Status.SUCCESS
        now = self.ctx.clock()
        if getattr(self.policy, "done", False) or now - self._started >= self.ctx.config.posture_reset_max_s - 1e-9:
            self.feedback_message = f"reset in {now - self._started:.2f} s"
            moved = {key: round(float(m), 3) for key, attr in (("escape_m", "escaped_m"), ("dock_m", "dock_m"))
                     if (m := getattr(self.policy, attr, 0.0) or 0.0)}  # a drive's way out; a manipulation's docking
            self.ctx.emit("posture_reset_finished", subtask=self.subtask.id, seconds=round(now - self._started, 3), steps=self.steps,
                          complete=bool(getattr(self.policy, "done", False)), **moved)
            self.policy = None
            self._note_start()
            return Status.SUCCESS
        self.ctx.step(np.asarray(self.policy.select_action(dict(self.ctx.obs or {}))))
        self.steps += 1
        self.feedback_message = f"resetting posture, step {self.steps}"
        return Status.RUNNING

    def _note_start(self) -> None:
        belief: Belief | None = self.bb.belief
        if self.start_pose is None and belief is not None:
            self.start_pose = tuple(belief.robot.pose)

    def terminate(self, new_status: Status) -> None:
        if new_status == Status.INVALID and self.policy is not None:  # preempted (already done, a timeout): try again next time
            self.ctx.needs_posture_reset = True
            self.policy = None


class KeepsHold(py_trees.decorators.EternalGuard):
    """py_trees' EternalGuard over a skill that needs an object in hand (a `holding(...)`
    precondition: handover, place, place_in): the attempt fails once the object has been
    believed out of the hand, without the skill's success, for `lost_object_s`. A policy
    that dropped the cup would otherwise go on acting with an empty hand until the attempt's
    timeout (a learned handover stood 25 s that way); the retry or the replan starts sooner
    and the reason says what happened. The grace covers a release's own moment between
    letting go and the object resting where it belongs, and is longer (`lost_unseen_s`)
    while the cameras have not seen the object since; an object the fingers are still at
    (perception's `at_hand`: let go, not yet withdrawn) is not lost at all."""

    def __init__(self, subtask: Subtask, child: py_trees.behaviour.Behaviour, ctx: RunContext, held: tuple[Predicate, ...]) -> None:
        self.held = held
        super().__init__(name=f"{subtask.id} keeps {_names(self.held)}", child=child, condition=self._kept)
        self.subtask = subtask
        self.ctx = ctx
        self.bb = bbk.attach(self, ctx.namespace, read=(bbk.BELIEF,), write=(bbk.FAILURES,))
        self._lost_since: float | None = None
        self._lost_at_frame = 0.0

    def _kept(self) -> bool:
        if self.status != Status.RUNNING:  # a new attempt
            self._lost_since = None
        threshold = self.ctx.config.confidence
        belief = self.bb.belief
        if (not unmet(belief, self.held, threshold) or not unmet(belief, self.subtask.success, threshold)
                or self._at_hand(belief)):
            self._lost_since = None
            return True
        now = self.ctx.clock()
        if self._lost_since is None:
            self._lost_since = now
            self._lost_at_frame = belief.time if belief is not None else 0.0  # perception's clock, as `last_seen`
        lost_for = now - self._lost_since
        seen = self._seen_since(belief, self._lost_at_frame)
        if lost_for < (self.ctx.config.lost_object_s if seen else self.ctx.config.lost_unseen_s) - 1e-9:
            return True
        reason = (f"lost {_names(self.held)}: not believed in hand for {lost_for:.1f} s "
                  f"({'seen elsewhere' if seen else 'not seen since'}) and {_names(self.subtask.success)} not believed")
        self.feedback_message = reason
        bbk.record_failure(self.bb, bbk.FailureRecord(subtask=self.subtask.id, node=self.name, reason=reason, time=now))
        return False

    def _objects(self, belief: Belief) -> list[ObjectBelief]:
        return [belief.objects[o] for p in self.held for o in p.args[:1] if o in belief.objects]

    def _seen_since(self, belief: Belief | None, since: float) -> bool:
        """Whether the cameras have seen the object since it was lost: then perception knows
        where it went; until then a released object's place is a guess (in a bin, under the hand)."""
        return belief is not None and any(o.last_seen >= since - 1e-9 for o in self._objects(belief))

    def _at_hand(self, belief: Belief | None) -> bool:
        """Let go but not yet withdrawn: the fingers are still at the object (on a palm, a
        surface), so it is not lost, though its success waits for the hand to leave."""
        return belief is not None and any(o.at_hand is not None for o in self._objects(belief))


def guarded_skill(subtask: Subtask, ctx: RunContext) -> py_trees.behaviour.Behaviour:
    """The subtask's skill leaf, under `KeepsHold` when the skill needs an object in hand (its
    `holding(...)` preconditions) from start to finish."""
    leaf = SkillLeaf(subtask, ctx)
    held = tuple(p for p in subtask.preconditions if p.name == "holding" and not p.negated)
    return KeepsHold(subtask, leaf, ctx, held) if held else leaf
