"""The skill library and goal methods as data: users add them in files, validated with lines."""

from __future__ import annotations

import os

# One torch thread for the shared MiniLM encoder in this test process: on shared cores two
# threads make each forward pass 10-30x slower (see planner.language.Encoder).
os.environ.setdefault("VLA_AGENT_PLANNER_THREADS", "1")

from pathlib import Path

import pytest

from planner import LibraryError, load_library, plan
from planner.language import Encoder, IntentModel
from scenarios.catalog import CATEGORIES

EXTRA = """\
skills:
  - name: wipe
    description: wipe a surface clean with a cloth
    params: {surface: surface}
    preconditions: ["near(robot, surface)"]
    success: ["near(robot, surface)"]
    instructions: ["wipe the {surface}"]
    timeout_s: 40
methods:
  - name: clean_surface
    description: drive to a surface and wipe it
    slots:
      surface: {type: surface, mention: ["", "on"], default: ask}
    steps: [navigate_to(surface), wipe(surface)]
    examples: [wipe the table, wipe down the counter, give the table a wipe, the counter is dirty, polish the table]
"""


def test_builtin_library_has_the_shared_skills():
    lib = load_library()
    assert set(lib.skills) >= {"look_for", "navigate_to", "pick", "place", "place_in", "handover"}
    assert lib.skills["pick"].success == ["holding(object)"]
    drink = lib.groups["drink"].category_set()
    assert drink == {c.name for c in CATEGORIES.values() if c.drink}


def test_a_user_file_adds_a_skill_and_a_method_without_code(tmp_path: Path):
    extra = tmp_path / "wipe.yaml"
    extra.write_text(EXTRA)
    lib = load_library([extra], include_env=False)
    out = plan("please wipe down the table", "kitchen", library=lib)
    assert out.kind == "plan", out
    assert [s.label for s in out.graph.order()] == ["navigate_to(table)", "wipe(table)"]
    assert out.graph.order()[1].instruction == "wipe the table"


@pytest.mark.parametrize(("edit", "line", "needle"), [
    (("wipe(surface)]", "wpie(surface)]"), 14, "unknown skill 'wpie'; did you mean 'wipe'?"),
    (('["near(robot, surface)"]\n    success', '["nearr(robot, surface)"]\n    success'), 5, "did you mean 'near'"),
    (("    timeout_s: 40", "    timeot_s: 40"), 8, "unknown field 'timeot_s'; did you mean 'timeout_s'?"),
    (('["wipe the {surface}"]', '["wipe the {table}"]'), 2, "{table}"),
    (("default: ask", "default: maybe"), 13, "default"),
])
def test_library_errors_point_at_the_line(tmp_path: Path, edit, line, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXTRA.replace(*edit))
    with pytest.raises(LibraryError) as info:
        load_library([bad], include_env=False)
    text = str(info.value)
    assert f"bad.yaml:{line}:" in text, text
    assert needle in text, text


def test_unreadable_and_malformed_files(tmp_path: Path):
    with pytest.raises(LibraryError, match="file not found"):
        load_library([tmp_path / "nope.yaml"], include_env=False)
    broken = tmp_path / "broken.yaml"
    broken.write_text("skills: [\n")
    with pytest.raises(LibraryError, match=r"broken.yaml:\d+:\d+: .*not valid YAML"):
        load_library([broken], include_env=False)


def test_phrase_embeddings_are_cached_on_disk(tmp_path: Path):
    lib = load_library(include_env=False)
    from planner.language import get_encoder

    enc = get_encoder()
    first = IntentModel(lib, enc, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("phrases-*.pt"))) == 1

    class NoEncode(Encoder):
        def encode(self, texts):  # the cache must make this unnecessary
            raise AssertionError("phrases were re-embedded")

        def model_id(self):
            return enc.model_id()

    second = IntentModel(lib, NoEncode(), cache_dir=tmp_path)
    assert (second.matrix == first.matrix).all()
