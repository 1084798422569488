"""Referring expressions: from the words of a goal to scene ids.

Parsing is deterministic and small on purpose: the embedding model decides *what* the user
wants (the method), these rules decide *which things* (the slots). A goal is tokenised and
tagged with a lexicon built from the catalogue (colours, categories and their aliases),
the library's word lists (groups such as "drink" or "toy", bin synonyms, "me"/"you") and
the scene (furniture and people ids). Mentions of objects collect their modifiers:
colours, "all"/plurals, "closest"/"farthest" (to the robot unless "to me"), "to my
left"/"on your right" (the speaker's frame is the person's facing in the scenario; "your"
is the robot's), and "on the table"/"from the shelf". `resolve_objects` turns a mention
into ids, or raises NeedClarification / CannotPlan with a sentence for the user.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from planner.library import Library
from planner.results import Candidate, CannotPlan, NeedClarification
from planner.scene import Scene
from scenarios.catalog import CATEGORIES, COLOURS, FURNITURE
from scenarios.schema import ROBOT_ID

SIDE_MARGIN = 0.05
"""Metres by which the chosen object must beat the runner-up for left/right or closest."""

PREPOSITIONS = {
    "on": "on", "onto": "onto", "in": "in", "into": "into", "inside": "inside", "from": "from", "off": "off",
    "to": "to", "at": "at", "for": "for", "towards": "towards", "toward": "towards", "over": "over", "by": "by",
    "near": "near", "next to": "near", "beside": "near", "on top of": "on", "out of": "from", "off of": "off",
    "onto the top of": "on", "in to": "into", "up to": "to",
}
DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "some", "its", "his", "her", "their"}
INDEFINITE = {"a", "an", "some", "any"}
FILLER = {"that", "which", "is", "are", "sitting", "lying", "standing", "there", "over", "one", "located", "placed"}
MASS_WORDS = {"everything", "stuff", "mess", "clutter", "junk", "crockery", "tableware", "dishes", "refreshments"}
POSSESSIVE_SPEAKER = {"my", "mine", "our"}
OBJECT_PRONOUNS = {"me", "us", "him", "her", "them"}
_CONTRACTIONS = [
    (re.compile(r"n't\b"), " not"), (re.compile(r"'m\b"), " am"), (re.compile(r"'re\b"), " are"),
    (re.compile(r"'s\b"), " is"), (re.compile(r"'d\b"), " would"), (re.compile(r"'ll\b"), " will"), (re.compile(r"'ve\b"), " have"),
]
_WORD = re.compile(r"[a-z0-9]+")


def plural(word: str) -> str:
    head, _, last = word.rpartition(" ")
    if last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def tokenize(text: str) -> list[str]:
    text = text.lower().replace("\u2019", "'").replace("`", "'")
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return _WORD.findall(text)


@dataclass(frozen=True)
class Tag:
    kind: str  # colour category group furniture fkind person speaker robot all closest farthest left right prep det word
    value: str = ""
    plural: bool = False
    text: str = ""


_LEXICONS: dict[int, tuple[Library, dict]] = {}


def _base_lexicon(library: Library) -> dict[tuple[str, ...], Tag]:
    cached = _LEXICONS.get(id(library))
    if cached is not None and cached[0] is library:
        return cached[1]
    lex: dict[tuple[str, ...], Tag] = {}

    def add(phrase: str, tag: Tag) -> None:
        key = tuple(tokenize(phrase))
        if key:
            lex.setdefault(key, Tag(tag.kind, tag.value, tag.plural, phrase))

    w = library.words
    for p, v in PREPOSITIONS.items():
        add(p, Tag("prep", v))
    for d in DETERMINERS | INDEFINITE:
        add(d, Tag("det", d))
    for kind, synonyms in w.furniture_kinds.items():
        for s in synonyms:
            add(s, Tag("fkind", kind, s.endswith("s") and s not in FURNITURE))
    for c in COLOURS:
        add(c, Tag("colour", c))
    add("gray", Tag("colour", "grey"))
    for cat in CATEGORIES.values():
        for name in (cat.name, *cat.aliases):
            add(name, Tag("category", cat.name))
            add(plural(name), Tag("category", cat.name, True))
    for gname, g in library.groups.items():
        for word in g.words:
            add(word, Tag("group", gname, word in MASS_WORDS or (word.endswith("s") and not word.endswith("ss"))))
    for kind in ("speaker", "robot", "person", "all", "closest", "farthest", "left", "right"):
        for word in getattr(w, kind):
            add(word, Tag(kind, word))
    _LEXICONS[id(library)] = (library, lex)
    return lex


_SCENE_LEXICONS: dict[tuple, tuple[Library, dict, int]] = {}


def lexicon_for(library: Library, scene: Scene) -> tuple[dict[tuple[str, ...], Tag], int]:
    """The base lexicon plus the scene's furniture and people ids, cached per scene layout."""
    key = (id(library), tuple(scene.furniture), tuple(sorted(scene.people_ids)))
    cached = _SCENE_LEXICONS.get(key)
    if cached is not None and cached[0] is library:
        return cached[1], cached[2]
    lex = dict(_base_lexicon(library))
    furniture, people = key[1], key[2]
    for fid in furniture:
        words = tuple(fid.replace("_", " ").split())
        lex[words] = Tag("furniture", fid, False, " ".join(words))
    for pid in people:
        lex[tuple(pid.replace("_", " ").split())] = Tag("person", pid, False, pid.replace("_", " "))
    longest = max(len(k) for k in lex)
    if len(_SCENE_LEXICONS) > 64:
        _SCENE_LEXICONS.clear()
    _SCENE_LEXICONS[key] = (library, lex, longest)
    return lex, longest


_PRONOUNS = {"i", "you", "we", "he", "she", "it", "they", "someone", "somebody", "u", "not"}


def tag(tokens: list[str], lexicon: dict[tuple[str, ...], Tag], longest: int) -> list[Tag]:
    out: list[Tag] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "can" and (i == 0 or tokens[i - 1] in _PRONOUNS or (i + 1 < len(tokens) and tokens[i + 1] in _PRONOUNS)):
            out.append(Tag("word", "can", text="can"))  # the verb: "can you ...", "I can"
            i += 1
            continue
        for n in range(min(longest, len(tokens) - i), 0, -1):
            found = lexicon.get(tuple(tokens[i : i + n]))
            if found is not None:
                out.append(found)
                i += n
                break
        else:
            out.append(Tag("word", tokens[i], text=tokens[i]))
            i += 1
    return out


def canonical(tags: list[Tag]) -> str:
    """The goal with its particulars abstracted, for matching intent by meaning.

    Sentence embeddings weigh nouns heavily: "put the ball on the sofa" lands nearer to
    "approach the sofa" than to "put the box on the counter". Dropping colours and
    replacing categories with "thing" and furniture with "table" (bins stay "bin", since
    they carry meaning: throwing away) leaves the verbs and the structure to decide.
    Group words ("drink", "toys", "mess") stay: they do carry intent.
    """
    out: list[str] = []
    for t in tags:
        if t.kind == "colour":
            continue
        if t.kind == "category":
            out.append("things" if t.plural else "thing")
        elif t.kind in ("furniture", "fkind"):
            out.append("bin" if t.value == "bin" else "table")
        elif t.kind == "person" and t.value not in ("him", "her", "them"):
            out.append("person")
        else:
            out.append(t.text or t.value)
    return " ".join(out)


def canonical_text(text: str, library: Library) -> str:
    """`canonical` with the scene-independent lexicon (for the library's example phrases)."""
    lex = _base_lexicon(library)
    return canonical(tag(tokenize(text), lex, max(len(k) for k in lex)))


# ----------------------------------------------------------------------------------- mentions
@dataclass
class FurnitureMention:
    ids: tuple[str, ...]  # one id, or every piece of that kind
    words: str
    prep: str  # "" when none precedes it
    attached: bool = False  # a location modifier of an object mention ("the cup on the table")


@dataclass
class ObjectMention:
    words: str
    categories: frozenset[str] | None  # None: any category
    group: str | None = None
    colours: tuple[str, ...] = ()
    plural: bool = False
    indefinite: bool = False
    side: str | None = None  # left / right
    side_frame: str = "speaker"  # speaker / robot
    extreme: str | None = None  # closest / farthest
    anchor: str = "robot"  # robot / speaker / a furniture id
    locations: list[FurnitureMention] = field(default_factory=list)

    def phrase(self) -> str:
        return " ".join([*self.colours, self.words]) if self.colours else self.words


@dataclass
class PersonMention:
    id: str | None  # None: the speaker
    prep: str
    object_pronoun: bool = False  # "me", "him": someone receives something


@dataclass
class ParsedGoal:
    tokens: list[str]
    tags: list[Tag]
    objects: list[ObjectMention] = field(default_factory=list)
    furniture: list[FurnitureMention] = field(default_factory=list)
    people: list[PersonMention] = field(default_factory=list)
    unknown_nouns: list[str] = field(default_factory=list)  # "the keys": a thing the planner has no word for

    def known_word_fraction(self) -> float:
        if not self.tags:
            return 0.0
        return sum(1 for t in self.tags if t.kind != "word") / len(self.tags)


def _furniture_ids(t: Tag, scene: Scene) -> tuple[str, ...]:
    if t.kind == "furniture":
        return (t.value,)
    return tuple(f.id for f in scene.furniture.values() if f.kind == t.value)


def parse(text: str, library: Library, scene: Scene) -> ParsedGoal:
    """Tag the goal and collect its object, furniture and person mentions."""
    lex, longest = lexicon_for(library, scene)
    tokens = tokenize(text)
    tags = tag(tokens, lex, longest)
    goal = ParsedGoal(tokens, tags)
    pending: dict = {"colours": [], "extreme": None, "side": None, "all": False, "indefinite": False}
    last_prep = ""
    i, n = 0, len(tags)

    def reset() -> None:
        pending.update(colours=[], extreme=None, side=None, all=False, indefinite=False)

    while i < n:
        t = tags[i]
        if t.kind == "det" or (t.kind == "speaker" and t.value in POSSESSIVE_SPEAKER):
            pending["indefinite"] = t.value in INDEFINITE
            unknown = _unknown_noun(tags, i + 1)
            if unknown:
                goal.unknown_nouns.append(unknown)
        elif t.kind == "all":
            pending["all"] = True
        elif t.kind == "colour":
            pending["colours"].append(t.value)
        elif t.kind in ("closest", "farthest"):
            pending["extreme"] = t.kind
        elif t.kind in ("left", "right"):
            if goal.objects and not pending["colours"] and i + 1 < n and tags[i + 1].kind not in ("category", "group"):
                goal.objects[-1].side = t.kind  # "the cup on the left"
            else:
                pending["side"] = t.kind
        elif t.kind in ("category", "group"):
            group = library.groups.get(t.value) if t.kind == "group" else None
            mention = ObjectMention(
                words=t.text,
                categories=frozenset({t.value}) if t.kind == "category" else (group.category_set() if group and group.categories != "all" else None),
                group=t.value if t.kind == "group" else None,
                colours=tuple(pending["colours"]),
                plural=t.plural or pending["all"],
                indefinite=pending["indefinite"],
                side=pending["side"],
                extreme=pending["extreme"],
            )
            reset()
            i = _post_modifiers(tags, i + 1, mention, goal, scene)
            goal.objects.append(mention)
            last_prep = ""
            continue
        elif t.kind in ("furniture", "fkind"):
            goal.furniture.append(FurnitureMention(_furniture_ids(t, scene), t.text, last_prep))
            last_prep = ""
        elif t.kind == "person":
            pid = t.value if t.value in scene.people_ids else None
            goal.people.append(PersonMention(pid if pid else "__any__", last_prep, t.value in OBJECT_PRONOUNS))
            last_prep = ""
        elif t.kind == "speaker":
            if t.value not in POSSESSIVE_SPEAKER:
                goal.people.append(PersonMention(None, last_prep, t.value in OBJECT_PRONOUNS))
            last_prep = ""
        elif t.kind == "prep":
            last_prep = t.value
        i += 1
    if pending["colours"] or pending["extreme"] or pending["side"]:
        goal.objects.append(ObjectMention(
            words="one", categories=None, colours=tuple(pending["colours"]), plural=pending["all"],
            side=pending["side"], extreme=pending["extreme"],
        ))
    return goal


def _unknown_noun(tags: list[Tag], j: int) -> str | None:
    """The unknown word a determiner introduces ("the keys"), if no known noun follows it."""
    words = []
    while j < len(tags) and len(words) < 3:
        t = tags[j]
        if t.kind in ("category", "group", "furniture", "fkind", "person", "speaker", "robot"):
            return None
        if t.kind != "word" and t.kind not in ("colour", "closest", "farthest", "left", "right", "all"):
            break
        if t.kind == "word":
            words.append(t.value)
        j += 1
    return words[-1] if words else None


def _post_modifiers(tags: list[Tag], j: int, m: ObjectMention, goal: ParsedGoal, scene: Scene) -> int:
    """Consume 'to my left', 'closest to me', 'on the table', ... after an object noun."""
    n = len(tags)

    def skip(k: int) -> int:
        while k < n and (tags[k].kind == "det" or (tags[k].kind == "word" and tags[k].value in FILLER)):
            k += 1
        return k

    while True:
        k = skip(j)
        if k >= n:
            return k
        t = tags[k]
        if t.kind in ("closest", "farthest"):
            m.extreme = t.kind
            j = k + 1
            continue
        if t.kind == "prep" and t.value in ("to", "on", "at") and k + 1 < n:
            k2 = k + 1
            frame = "speaker"
            if tags[k2].kind in ("speaker", "robot"):
                frame = "robot" if tags[k2].kind == "robot" else "speaker"
                k2 += 1
            else:
                k2 = skip(k2)
            if k2 < n and tags[k2].kind in ("left", "right"):
                m.side, m.side_frame = tags[k2].kind, frame
                j = k2 + 1
                if j < n and tags[j].kind == "word" and tags[j].value in ("side", "hand"):
                    j += 1
                continue
            if m.extreme and t.value == "to" and k + 1 < n and tags[k + 1].kind in ("speaker", "robot"):
                m.anchor = "speaker" if tags[k + 1].kind == "speaker" else ROBOT_ID
                j = k + 2
                continue
        if t.kind == "prep" and t.value in ("on", "in", "inside", "from", "off", "at", "near"):
            k2 = skip(k + 1)
            if k2 < n and tags[k2].kind in ("furniture", "fkind"):
                fm = FurnitureMention(_furniture_ids(tags[k2], scene), tags[k2].text, t.value, attached=True)
                m.locations.append(fm)
                goal.furniture.append(fm)
                j = k2 + 1
                continue
        return j


# --------------------------------------------------------------------------------- resolution
def _join(items: list[str], conj: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conj} " + items[-1]


def _lateral(scene: Scene, frame_owner: str, ids: list[str]) -> dict[str, float]:
    frame = scene.frame(frame_owner)
    if frame is None:
        return {i: 0.0 for i in ids}
    (ox, oy), yaw = frame
    lx, ly = -math.sin(yaw), math.cos(yaw)
    out = {}
    for i in ids:
        p = scene.position(i)
        out[i] = (p[0] - ox) * lx + (p[1] - oy) * ly if p else 0.0
    return out


def speaker_of(scene: Scene) -> str | None:
    """The person talking: the only person in the scene (None if there is not exactly one)."""
    return scene.people_ids[0] if len(scene.people_ids) == 1 else None


def resolve_objects(
    m: ObjectMention,
    scene: Scene,
    library: Library,
    slot: str,
    *,
    allowed: frozenset[str] | None = None,
    allowed_name: str = "",
    many: bool = True,
    locations: list[FurnitureMention] | None = None,
) -> list[str]:
    """The scene objects a mention refers to; raises NeedClarification or CannotPlan."""
    objects = scene.belief.objects
    cands = [o for o in objects.values() if (m.categories is None or o.category in m.categories)]
    if m.colours:
        cands = [o for o in cands if o.colour in m.colours]
    where = ""
    locs = m.locations if locations is None else locations
    if locs:
        ids = {i for fm in locs for i in fm.ids}
        cands = [o for o in cands if scene.support_of(o.id) in ids]
        where = " " + ("in" if locs[0].prep in ("in", "inside") else "on") + " the " + locs[0].words
    what = m.phrase()
    if not cands:
        same_cat = [o.description for o in objects.values() if m.categories is None or o.category in m.categories]
        here = _join(sorted({o.description for o in objects.values()}), "and") if objects else "nothing"
        if m.colours and same_cat:
            kinds = sorted(set(same_cat))
            listing = f"the only {m.words} here is the {kinds[0]}" if len(kinds) == 1 else f"here there are: {_join(kinds, 'and')}"
            raise CannotPlan("unknown_object", f"there is no {what}{where} in this scene; {listing}")
        code = "impossible" if m.group and not m.colours and not locs else "unknown_object"  # "a drink": the scene lacks one
        raise CannotPlan(code, f"there is no {what}{where} in this scene (objects here: {here})")
    if allowed is not None:
        fitting = [o for o in cands if o.category in allowed]
        if not fitting:
            names = _join(sorted({o.description for o in cands}), "and")
            raise CannotPlan("impossible", f"the {names} {'is' if len(cands) == 1 else 'are'} not {allowed_name or 'suitable'}")
        cands = fitting
    ids = [o.id for o in cands]

    if m.side:
        owner = speaker_of(scene) if m.side_frame == "speaker" else ROBOT_ID
        if owner is None:
            raise CannotPlan("impossible", f"'{m.side}' needs a point of view, but there is not exactly one person here; say 'your {m.side}' for the robot's")
        lat = _lateral(scene, owner, ids)
        sign = 1.0 if m.side == "left" else -1.0
        whose = "your" if m.side_frame == "speaker" else "my"
        if len(ids) == 1:
            if sign * lat[ids[0]] <= 0:
                other = "right" if m.side == "left" else "left"
                raise CannotPlan("unknown_object", f"there is no {what} to {whose} {m.side}: {scene.the(ids[0])} is to {whose} {other}")
        elif not m.plural:
            ranked = sorted(ids, key=lambda i: -sign * lat[i])
            if sign * (lat[ranked[0]] - lat[ranked[1]]) < SIDE_MARGIN:
                close = [i for i in ranked if sign * (lat[ranked[0]] - lat[i]) < SIDE_MARGIN]
                raise NeedClarification(slot, f"Which {what} do you mean? {_join([scene.the(i) for i in close], 'and')} are about as far to {whose} {m.side}.",
                                        [Candidate(id=i, description=scene.describe(i)) for i in close])
            ids = ranked[:1]
        else:
            ids = [i for i in ids if sign * lat[i] > 0] or ids
    if m.extreme:
        anchor = m.anchor if m.anchor != "speaker" else speaker_of(scene)
        if anchor is None:
            raise CannotPlan("impossible", "'closest to me' needs exactly one person in the scene")
        ap = scene.position(anchor)
        dist = {i: math.dist(scene.position(i) or ap, ap) for i in ids}  # type: ignore[arg-type]
        sign = 1.0 if m.extreme == "closest" else -1.0
        ranked = sorted(ids, key=lambda i: sign * dist[i])
        if len(ranked) > 1 and not m.plural:
            if sign * (dist[ranked[1]] - dist[ranked[0]]) < SIDE_MARGIN:
                close = [i for i in ranked if sign * (dist[i] - dist[ranked[0]]) < SIDE_MARGIN]
                who = "you" if anchor != ROBOT_ID else "me"
                how = "close to" if m.extreme == "closest" else "far from"
                raise NeedClarification(slot, f"Which {what} do you mean? {_join([f'{scene.the(i)} ({dist[i]:.2f} m)' for i in close], 'and')} are about as {how} {who}.",
                                        [Candidate(id=i, description=scene.describe(i)) for i in close])
        ids = ranked[:1] if not m.plural else ranked
    if len(ids) > 1 and not (m.plural and many):
        raise NeedClarification(slot, f"Which {what.removesuffix('s') if m.plural else what} do you mean: {_join([scene.the(i) for i in ids])}?",
                                [Candidate(id=i, description=scene.describe(i)) for i in ids])
    return ids
