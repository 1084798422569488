"""The interactive debugger prompt: a thin `cmd.Cmd` over `Debugger` (which does the work)."""

from __future__ import annotations

import cmd
import json
import shlex
from pathlib import Path
from typing import IO

from behaviors.debugger import DebugError, Debugger, DebugState


class DebugConsole(cmd.Cmd):
    """step [n] | next | continue | break SPEC | delete N | force TARGET success|failure [always] |
    breaks | tree | bb | belief | frame [DIR] | plan | status | help | quit"""

    prompt = "(vla-debug) "

    def __init__(self, debugger: Debugger, frames_dir: Path = Path("runs/frames"), stdin: IO[str] | None = None,
                 stdout: IO[str] | None = None) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        if stdin is not None:
            self.use_rawinput = False
        self.dbg = debugger
        self.frames_dir = frames_dir
        self.intro = (f"Debugging {debugger.ex.goal!r}: {len(debugger.ex.graph)} subtasks, paused before the first tick.\n"
                      f"{debugger.plan_text()}\nType help for the commands.")

    # ------------------------------------------------------------------------------- helpers
    def _say(self, text: str) -> None:
        self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    def _state(self, st: DebugState) -> None:
        line = f"tick {st.tick}  t={st.time:.2f}s  status={st.status}  subtask={st.subtask or '-'}"
        if st.paused:
            line += f"\npaused: {st.paused}"
        if st.finished and st.outcome is not None:
            o = st.outcome
            line += f"\nrun {o.status}" + (f" at {o.failed_subtask}" if o.failed_subtask else "") + f" after {o.replans} replan(s)"
            for r in o.reasons:
                line += f"\n  - {r}"
        self._say(line)

    def onecmd(self, line: str) -> bool:
        try:
            return super().onecmd(line)
        except DebugError as exc:
            self._say(f"error: {exc}")
            return False

    def emptyline(self) -> bool:  # an empty line does nothing (not: repeat the last command)
        return False

    def default(self, line: str) -> bool:
        if line.strip() in ("EOF",):
            return self.do_quit("")
        self._say(f"unknown command {line.split()[0]!r}; type help")
        return False

    # ------------------------------------------------------------------------------ commands
    def do_step(self, arg: str) -> None:
        """step [N]: run N ticks (default 1), stopping early at a breakpoint or the end."""
        try:
            n = int(arg) if arg.strip() else 1
        except ValueError:
            raise DebugError(f"step takes a number of ticks, got {arg!r}") from None
        self._state(self.dbg.step(n))

    def do_next(self, arg: str) -> None:
        """next: run until the next subtask is about to start."""
        self._state(self.dbg.next_subtask())

    def do_continue(self, arg: str) -> None:
        """continue: run until a breakpoint or the end of the run."""
        self._state(self.dbg.cont())

    do_c = do_continue
    do_s = do_step
    do_n = do_next

    def do_break(self, arg: str) -> None:
        """break SPEC: pause before a subtask (t3), before any subtask of a skill (pick),
        or when a predicate's believed truth flips (holding(red_cup)). Without SPEC: list them."""
        if not arg.strip():
            return self.do_breaks("")
        bp = self.dbg.add_breakpoint(arg)
        self._say(f"breakpoint {bp.describe()}")

    do_b = do_break

    def do_delete(self, arg: str) -> None:
        """delete N|SPEC: remove a breakpoint or a forced result."""
        item = self.dbg.remove_breakpoint(arg.strip())
        self._say(f"deleted {item.describe()}")

    def do_force(self, arg: str) -> None:
        """force TARGET success|failure [always]: make a node return that result without running
        (TARGET: a subtask id, ID.skill for its skill leaf, or a node name). Once, unless 'always'."""
        parts = shlex.split(arg)
        if len(parts) < 2:
            raise DebugError("usage: force TARGET success|failure [always]")
        always = parts[-1] == "always"
        if always:
            parts = parts[:-1]
        f = self.dbg.force(" ".join(parts[:-1]), parts[-1], once=not always)
        self._say(f"set {f.describe()}")

    def do_breaks(self, arg: str) -> None:
        """breaks: list breakpoints and forced results."""
        hooks = self.dbg.hooks()
        self._say("\n".join(h.describe() for h in hooks) if hooks else "no breakpoints")

    def do_tree(self, arg: str) -> None:
        """tree: the behaviour tree with each node's status."""
        self._say(self.dbg.tree_text())

    def do_bb(self, arg: str) -> None:
        """bb: the blackboard (belief, current subtask, last action, failure reasons)."""
        self._say(json.dumps(self.dbg.blackboard(), indent=2, default=str))

    def do_belief(self, arg: str) -> None:
        """belief: what perception believes: objects, people and predicates with confidences."""
        b = self.dbg.belief()
        if b is None:
            self._say("no belief yet (step once)")
            return
        lines = [f"belief at t={b.time:.2f}s; robot at ({b.robot.pose[0]:.2f}, {b.robot.pose[1]:.2f}, yaw {b.robot.pose[2]:.2f})"]
        for o in b.objects.values():
            lines.append(f"  {o.id:<14} {o.description:<16} at ({o.position[0]:.2f}, {o.position[1]:.2f}, {o.position[2]:.2f})"
                         f"  conf {o.confidence:.2f}{'  visible' if o.visible else ''}")
        for name, p in sorted(b.predicates.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {'T' if p >= 0.5 else 'F'} {p:5.2f}  {name}")
        self._say("\n".join(lines))

    def do_frame(self, arg: str) -> None:
        """frame [DIR]: save the current camera images as PNG files."""
        paths = self.dbg.frame(Path(arg.strip()) if arg.strip() else self.frames_dir)
        self._say("saved " + ", ".join(str(p) for p in paths))

    def do_plan(self, arg: str) -> None:
        """plan: the task graph (* marks the current subtask)."""
        self._say(self.dbg.plan_text())

    def do_status(self, arg: str) -> None:
        """status: tick, world time, the tree's status and the current subtask."""
        self._state(self.dbg.status)

    def do_quit(self, arg: str) -> bool:
        """quit: stop debugging (the run is abandoned)."""
        self._say("bye")
        return True

    do_q = do_quit
    do_exit = do_quit
    do_EOF = do_quit
