"""`plan(goal, scenario)`: goal text to a validated TaskGraph, a question, or a refusal.

The steps, each in its own module: check the text (length, language), pick the method by
meaning (language.py), fill the method's slots from the goal's words and the belief
(grounding.py), expand the method into chains of skill calls (methods.py), drop the steps
whose outcome already holds, build the graph (taskgraph.py) and check it by forward
simulation and reachability (validation.py). Nothing raises for bad input: every outcome
is a PlanResult, a Clarification or a PlanningError.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

from perception.belief import Belief
from planner.grounding import ObjectMention, ParsedGoal, canonical, parse, resolve_objects, speaker_of
from planner.language import MIN_SIMILARITY, Encoder, IntentScore, intent_model, language_problem
from planner.library import Library, default_library
from planner.methods import Call, MethodSpec, SlotSpec, expand
from planner.results import Candidate, CannotPlan, Clarification, NeedClarification, Outcome, PlanningError, PlanResult
from planner.scene import Scene
from planner.scene_belief import belief_from_scenario
from planner.skills import Fact, atom_text, compiled, holds
from planner.taskgraph import Subtask, TaskGraph
from planner.validation import check
from scenarios.catalog import FURNITURE
from scenarios.predicates import Predicate
from scenarios.schema import ROBOT_ID, Scenario

log = structlog.get_logger(__name__)
MAX_GOAL_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plan(
    goal: str,
    scenario: Scenario | str | Path,
    belief: Belief | None = None,
    *,
    library: Library | None = None,
    answers: Mapping[str, str | list[str]] | None = None,
    encoder: Encoder | None = None,
    approach_first: bool = False,
) -> Outcome:
    """Decompose `goal` in `scenario` into a validated TaskGraph.

    `belief` defaults to the scenario file's own layout (`belief_from_scenario`); at run time
    pass perception's. `answers` fills slots a previous Clarification asked about
    ({slot: id}). `approach_first` keeps the drive to a thing even when the robot already
    stands within reach of it: a learned skill was trained from the pose the drive ends at,
    not from wherever the robot happens to be. Repairs of the plan keep the setting.
    Returns PlanResult | Clarification | PlanningError; never raises for bad input.
    """
    started = time.perf_counter()
    text = goal if isinstance(goal, str) else ""
    ranking: list[IntentScore] = []
    method: MethodSpec | None = None
    try:
        if not isinstance(goal, str):
            raise CannotPlan("empty_goal", f"the goal must be text, got {type(goal).__name__}")
        lib = library or default_library()
        sc = _scenario(scenario)
        scene = Scene(sc, belief or belief_from_scenario(sc))
        text = _clean(goal)
        model = intent_model(lib, encoder)
        problem = language_problem(text, model.vocabulary)
        if problem:
            raise CannotPlan("not_english", f"{problem}. {lib.words.not_english_hint}".strip())
        parsed = parse(text, lib, scene)
        ranking = rerank(model.rank(canonical(parsed.tags)), parsed, lib)
        top = ranking[0]
        if not top.method or top.score < MIN_SIMILARITY:
            raise CannotPlan("unknown_goal", f"no known goal matches {text!r} (closest: {model.closest_goals(ranking, 1)[0]!r})")
        method = lib.methods[top.method]
        bindings = bind(method, parsed, scene, lib, answers or {})
        result = build(text, method, top.score, bindings, scene, lib, approach_first=approach_first)
        log.debug("planner.plan", goal=text, method=method.name, confidence=round(top.score, 3),
                  subtasks=len(result.graph), ms=round(1000 * (time.perf_counter() - started), 2))
        return result
    except NeedClarification as q:
        return Clarification(goal=text, method=method.name if method else None, slot=q.slot, question=q.question, candidates=q.candidates)
    except CannotPlan as e:
        closest = [r.example for r in ranking if r.method][:3] if e.code == "unknown_goal" else []
        if e.code in ("not_english", "empty_goal", "too_long") and not closest:
            closest = _suggestions(library)
        return PlanningError(goal=text, code=e.code, reason=e.reason, closest_goals=closest)
    except Exception as exc:  # the contract: nothing escapes; log it for the developer
        log.exception("planner.internal_error", goal=text[:100])
        return PlanningError(goal=text, code="internal", reason=f"the planner failed unexpectedly: {type(exc).__name__}: {exc}")


STRUCTURE_PENALTY = 0.15
"""Similarity taken off a method for each part of the goal it would have to ignore."""


def rerank(ranking: list[IntentScore], parsed: ParsedGoal, library: Library) -> list[IntentScore]:
    """Prefer methods whose slots the goal's structure fits.

    Embeddings see "bring the can from the shelf to the person" as close to "move the
    bottle to the shelf" as to "bring the ball to the person"; the words say a person
    receives it and nothing names a destination. A method loses STRUCTURE_PENALTY when
    the goal names a recipient ("to/for the person") it has no slot for, and when it
    needs a place the goal does not name.
    """
    recipient = any(p.prep in ("to", "for") or p.object_pronoun for p in parsed.people)
    out: list[IntentScore] = []
    for r in ranking:
        method = library.methods.get(r.method)
        if method is None:
            out.append(r)
            continue
        penalty = 0.0
        types = {s.type for s in method.slots.values()}
        if recipient and not types & {"person", "target"}:
            penalty += STRUCTURE_PENALTY
        for slot in method.slots.values():
            if slot.type in ("place", "surface", "container") and slot.default == "ask":
                preps = slot.mention or [""]
                if not any(fm.prep in preps for fm in parsed.furniture):
                    penalty += STRUCTURE_PENALTY
        out.append(IntentScore(r.method, r.score - penalty, r.example) if penalty else r)
    return sorted(out, key=lambda x: -x.score)


def _suggestions(library: Library | None) -> list[str]:
    try:
        lib = library or default_library()
        return [m.examples[0] for m in lib.methods.values()][:3]
    except Exception:
        return []


def _scenario(scenario: Scenario | str | Path) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    from scenarios.loading import ScenarioError, load_scenario

    try:
        return load_scenario(scenario)
    except ScenarioError as exc:
        raise CannotPlan("bad_scene", f"{scenario} is not a usable scenario: " + "; ".join(str(i) for i in exc.issues)) from None


def _clean(goal: str) -> str:
    if len(goal) > MAX_GOAL_CHARS:
        raise CannotPlan("too_long", f"the goal is {len(goal)} characters long; goals are at most {MAX_GOAL_CHARS} (say it in one sentence)")
    text = " ".join(_CONTROL.sub(" ", goal).split())
    if not text:
        raise CannotPlan("empty_goal", "the goal is empty; say what the robot should do, e.g. \"serve a drink to the person\"")
    return text


# -------------------------------------------------------------------------------------- slots
def _join(items: list[str], conj: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conj} " + items[-1]


def _furniture_fits(slot: SlotSpec, fid: str, scene: Scene) -> bool:
    return slot.type in scene.types_of(fid) and (slot.kinds is None or scene.kind(fid) in slot.kinds)


def _type_words(slot: SlotSpec) -> str:
    return {"surface": "a surface to put things on", "container": "a container", "place": "somewhere to put things",
            "furniture": "furniture", "target": "somewhere to go", "person": "a person", "object": "an object"}[slot.type]


def bind(method: MethodSpec, parsed: ParsedGoal, scene: Scene, library: Library, answers: Mapping[str, str | list[str]]) -> dict[str, list[str]]:
    """Slot -> scene ids, from the goal's mentions, then the slot defaults; may ask or refuse."""
    out: dict[str, list[str]] = {}
    used: set[int] = set()
    order = [n for n, s in method.slots.items() if s.type != "object"] + [n for n, s in method.slots.items() if s.type == "object"]
    for name in order:
        slot = method.slots[name]
        if name in answers:
            out[name] = _answer(name, slot, answers[name], scene, library)
        elif slot.type == "object":
            out[name] = _bind_objects(name, slot, parsed, scene, library, out)
        elif slot.type == "person":
            out[name] = _bind_person(name, parsed, scene)
        else:
            out[name] = _bind_place(name, slot, parsed, scene, library, used)
    return out


def _answer(name: str, slot: SlotSpec, value: str | list[str], scene: Scene, library: Library) -> list[str]:
    ids = [value] if isinstance(value, str) else list(value)
    for i in ids:
        types = scene.types_of(i)
        if slot.type not in types:
            raise CannotPlan("unknown_object", f"{i!r} cannot fill {name!r}: it is not {_type_words(slot)} in this scene")
        if slot.type == "object" and slot.group != "thing":
            allowed = library.groups[slot.group].category_set()
            if scene.belief.objects[i].category not in allowed:
                raise CannotPlan("impossible", f"{scene.the(i)} is not a {slot.group}")
    if len(ids) > 1 and not slot.many:
        raise CannotPlan("unknown_object", f"{name!r} takes one value, got {len(ids)}")
    return ids


def _bind_person(name: str, parsed: ParsedGoal, scene: Scene) -> list[str]:
    people = scene.people_ids
    if not people:
        raise CannotPlan("impossible", "there is nobody in this scene to hand it to")
    for m in parsed.people:
        if m.id and m.id != "__any__":
            return [m.id]
    speaker = speaker_of(scene)
    if speaker is None:
        raise NeedClarification(name, f"Who is it for: {_join([scene.the(p) for p in people])}?",
                                [Candidate(id=p, description=scene.describe(p)) for p in people])
    return [speaker]


def _bind_place(name: str, slot: SlotSpec, parsed: ParsedGoal, scene: Scene, library: Library, used: set[int]) -> list[str]:
    preps = slot.mention if slot.mention is not None else [""]
    mentions = [(i, fm) for i, fm in enumerate(parsed.furniture) if i not in used and fm.prep in preps]
    last = any(p in preps for p in ("to", "into", "onto"))
    if slot.type == "container":
        # a bin mentioned anywhere is the container ("throw everything in the bin")
        mentions = [(i, fm) for i, fm in mentions if any(_furniture_fits(slot, f, scene) for f in fm.ids)] or mentions
    if slot.type == "furniture" and slot.default == "none":
        # a source is never the container the method fills
        mentions = [(i, fm) for i, fm in mentions if not all(FURNITURE[scene.kind(f)].container for f in fm.ids)]
    if mentions:
        i, fm = mentions[-1] if last else mentions[0]
        used.add(i)
        fitting = [f for f in fm.ids if _furniture_fits(slot, f, scene)]
        if not fitting:
            if not fm.ids:
                raise CannotPlan("unknown_object", f"there is no {fm.words} in this scene" + _furniture_hint(scene))
            what = scene.the(fm.ids[0])
            raise CannotPlan("impossible", f"{what} is not {_type_words(slot)}" + _kinds_hint(slot, scene))
        if fm.attached:
            fm.attached = False
            for om in parsed.objects:
                if fm in om.locations:
                    om.locations.remove(fm)
        if len(fitting) > 1:
            raise NeedClarification(name, f"Which {fm.words} do you mean: {_join([scene.the(f) for f in fitting])}?",
                                    [Candidate(id=f, description=scene.describe(f)) for f in fitting])
        return fitting
    if slot.type == "target":
        for pm in parsed.people:
            return [pm.id if pm.id and pm.id != "__any__" else _bind_person(name, parsed, scene)[0]]
        for om in parsed.objects:
            return resolve_objects(om, scene, library, name, many=False)
    candidates = [f.id for f in scene.furniture.values() if _furniture_fits(slot, f.id, scene)]
    if slot.type == "target":
        candidates += scene.people_ids
    if slot.default == "none":
        return []
    if not candidates:
        kinds = slot.kinds or [k for k, d in FURNITURE.items() if slot.type in _kind_types(d)]
        raise CannotPlan("impossible", f"there is no {_join(kinds)} in this scene" + _furniture_hint(scene))
    if slot.default == "only" and len(candidates) == 1:
        return candidates
    question = {
        "place": "Where should I put it",
        "target": "Where should I go",
        "container": "Which container should I use",
    }.get(slot.type, f"Which {_join(slot.kinds) if slot.kinds else 'one'} do you mean")
    raise NeedClarification(name, f"{question}: {_join([scene.the(c) for c in candidates])}?",
                            [Candidate(id=c, description=scene.describe(c)) for c in candidates])


def _kind_types(d) -> set[str]:
    out = {"furniture", "target"}
    if d.surface:
        out |= {"surface", "place"}
    if d.container:
        out |= {"container", "place"}
    return out


def _furniture_hint(scene: Scene) -> str:
    return f" (furniture here: {_join([scene.describe(f) for f in scene.furniture], 'and')})" if scene.furniture else " (there is no furniture here)"


def _kinds_hint(slot: SlotSpec, scene: Scene) -> str:
    ok = [scene.the(f) for f in scene.furniture if _furniture_fits(slot, f, scene)]
    return f"; try {_join(ok)}" if ok else ""


def _bind_objects(name: str, slot: SlotSpec, parsed: ParsedGoal, scene: Scene, library: Library, bound: dict[str, list[str]]) -> list[str]:
    group = library.groups[slot.group]
    allowed = None if slot.group == "thing" else group.category_set()
    on = set(bound.get(slot.on, [])) if slot.on else set()
    not_on = set(bound.get(slot.not_on, [])) if slot.not_on else set()

    def filtered(ids: list[str]) -> list[str]:
        if on:
            ids = [i for i in ids if scene.support_of(i) in on]
        if not_on:
            ids = [i for i in ids if scene.support_of(i) not in not_on]
        return ids

    mentions = [m for m in parsed.objects if not _is_bare_everything(m) or on or not_on or len(parsed.objects) == 1]
    if mentions:
        ids: list[str] = []
        for m in mentions:
            found = resolve_objects(m, scene, library, name, allowed=allowed, allowed_name=f"a {slot.group}", many=slot.many)
            if m.plural:
                found = filtered(found) if (on or not_on) else found
            ids += [i for i in found if i not in ids]
        if len(ids) > 1 and not slot.many:
            raise NeedClarification(name, f"Which one do you mean: {_join([scene.the(i) for i in ids])}?",
                                    [Candidate(id=i, description=scene.describe(i)) for i in ids])
        return ids
    if parsed.unknown_nouns and slot.default == "ask":
        word = parsed.unknown_nouns[0]
        here = _join(sorted({o.description for o in scene.belief.objects.values()}), "and") if scene.belief.objects else "nothing"
        raise CannotPlan("unknown_object", f"there is no {word!r} in this scene, or no word for it in the planner's catalogue (objects here: {here})")
    cands = [o.id for o in scene.belief.objects.values() if allowed is None or o.category in allowed]
    if slot.default == "all":
        return filtered(cands)
    if not cands:
        raise CannotPlan("impossible", f"there is no {slot.group} in this scene" + (
            f" (objects here: {_join(sorted({o.description for o in scene.belief.objects.values()}), 'and')})" if scene.belief.objects else ""))
    if slot.default == "only" and len(cands) == 1:
        return cands
    what = "which one" if slot.group == "thing" else f"which {slot.group}"
    raise NeedClarification(name, f"{what.capitalize()} do you mean: {_join([scene.the(c) for c in cands])}?",
                            [Candidate(id=c, description=scene.describe(c)) for c in cands])


def _is_bare_everything(m: ObjectMention) -> bool:
    return m.categories is None and not m.colours and not m.locations and not m.side and not m.extreme and m.words in ("one", "ones", "it")


# -------------------------------------------------------------------------------------- build
def chain_goal(chain: list[Call], library: Library) -> list[tuple[str, tuple[str, ...], bool]]:
    skill, args = chain[-1]
    return compiled(library.skills[skill]).successes(args)


def suffix_start(chain: list[Call], state: set[Fact] | frozenset[Fact], library: Library) -> int:
    """Index of the first step still needed: the shortest suffix that works from `state`."""
    goal = chain_goal(chain, library)
    for k in range(len(chain), -1, -1):
        facts = set(state)
        ok = True
        for skill_name, args in chain[k:]:
            skill = compiled(library.skills[skill_name])
            if not all(holds(facts, a) for a in skill.preconditions(args)):
                ok = False
                break
            skill.apply(facts, args)
        if ok and all(holds(facts, a) for a in goal):
            return k
    return 0


def _transient(state: frozenset[Fact]) -> frozenset[Fact]:
    """Facts another chain would undo before this one runs: where the robot stands."""
    return frozenset(f for f in state if not (f[0] == "near" and f[1][0] == ROBOT_ID))


def build(
    goal: str,
    method: MethodSpec,
    confidence: float,
    bindings: dict[str, list[str]],
    scene: Scene,
    library: Library,
    *,
    reason: str | None = None,
    history: list[str] | None = None,
    approach_first: bool = False,
) -> PlanResult:
    """Expand, prune what already holds, assemble and validate the graph (see `plan` for
    `approach_first`: every chain is then pruned as if the robot stood near nothing)."""

    def fits(skill: str, args: tuple[str, ...]) -> bool:
        spec = library.skills.get(skill)
        return spec is not None and scene.fits(spec.params, args)

    try:
        chains = expand(method, bindings, fits)
    except ValueError as exc:
        raise CannotPlan("impossible", str(exc)) from None
    state = scene.true_facts
    reduced = _transient(state)
    starts_full = [suffix_start(c, state, library) for c in chains]
    starts_reduced = [suffix_start(c, reduced, library) for c in chains]
    gain = [f - r for f, r in zip(starts_full, starts_reduced)]
    first = max(range(len(chains)), key=lambda i: gain[i]) if chains else 0
    order = [first] + [i for i in range(len(chains)) if i != first] if chains else []
    notes: list[str] = []
    graph = TaskGraph(goal=goal, method=method.name, confidence=round(confidence, 4), scenario=scene.scenario.name,
                      bindings=bindings, goals=[], reason=reason, history=list(history or []), approach_first=approach_first)
    n = 0
    for rank, ci in enumerate(order):
        chain = chains[ci]
        k = starts_full[ci] if rank == 0 and not approach_first else starts_reduced[ci]
        goal_atoms = chain_goal(chain, library)
        graph.attrs["goals"].append(", ".join(atom_text(a) for a in goal_atoms))
        group = chain[0][1][0] if method.for_each else method.name
        if k == len(chain):
            notes.append(f"nothing to do for {scene.the(group) if group in scene.belief.objects else group}: "
                         f"{', '.join(atom_text(a) for a in goal_atoms)} already holds")
            continue
        if k > 0:
            done = [f"{s}({', '.join(a)})" for s, a in chain[:k]]
            held = [atom_text(a) for s, args in chain[:k] for a in compiled(library.skills[s]).successes(args) if holds(state, a)]
            notes.append(f"skipped {', '.join(done)}: {', '.join(held) if held else 'their outcome'} already holds")
        prev: str | None = None
        for skill_name, args in chain[k:]:
            n += 1
            sub = _subtask(f"t{n}", skill_name, args, group, scene, library, approach_first)
            graph.add(sub, after=[prev] if prev else [])
            prev = sub.id
    if not chains:
        notes.append(_nothing_note(method, bindings, scene))
    problem = check(graph, scene, library)
    if problem:
        raise CannotPlan("impossible", problem)
    return PlanResult(goal=goal, method=method.name, confidence=confidence, bindings=bindings, graph=graph, notes=notes, reason=reason)


def _nothing_note(method: MethodSpec, bindings: dict[str, list[str]], scene: Scene) -> str:
    slot = method.slots.get(method.for_each or "")
    if slot is not None and slot.not_on and bindings.get(slot.not_on):
        return f"nothing to do: every {slot.group if slot.group != 'thing' else 'object'} is already on or in {scene.the(bindings[slot.not_on][0])}"
    if slot is not None and slot.on and bindings.get(slot.on):
        return f"nothing to do: there is nothing on {scene.the(bindings[slot.on][0])}"
    return "nothing to do: nothing in the scene needs it"


def subtask_for(scenario: Scenario, skill: str, args: tuple[str, ...] | list[str], *, sid: str = "t1",
                instruction: str | None = None, library: Library | None = None, approach_first: bool = False) -> Subtask:
    """One skill call as the planner would emit it (preconditions, success predicates,
    timeout, retries and instruction from the library), for running a single skill
    through the behaviour tree — e.g. to evaluate a policy skill by skill. `approach_first`
    as in `plan`: a drive runs even where `near` already holds (a learned policy's plans)."""
    library = library or default_library()
    if skill not in library.skills:
        raise ValueError(f"unknown skill {skill!r} (known: {', '.join(sorted(library.skills))})")
    sub = _subtask(sid, skill, tuple(args), skill, Scene(scenario, belief_from_scenario(scenario)), library, approach_first)
    return sub if instruction is None else sub.model_copy(update={"instruction": instruction})


def _subtask(sid: str, skill_name: str, args: tuple[str, ...], group: str, scene: Scene, library: Library,
             approach_first: bool = False) -> Subtask:
    spec = library.skills[skill_name]
    skill = compiled(spec)
    names = {p: scene.describe(a) for p, a in zip(skill.params, args)}

    def preds(atoms) -> tuple[Predicate, ...]:
        return tuple(Predicate(name=name, args=xs, negated=neg) for name, xs, neg in atoms)

    success = preds(skill.successes(args))
    return Subtask(
        id=sid, skill=skill_name, args=args, instruction=spec.instruction(names),
        preconditions=preds(skill.preconditions(args)), success=success,
        timeout_s=spec.timeout_s, retries=spec.retries, group=group,
        always_run=approach_first and any(p.name == "near" and not p.negated for p in success),
    )

