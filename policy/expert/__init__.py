"""The scripted expert: skills driven by privileged state, with the learned policy's interface.

It is a baseline and the source of demonstrations; it reads `world.privileged_state()`
(that is its job), which nothing else on the decision path may do.
"""

from policy.expert.expert import SKILLS, ScriptedExpert, SkillError, validate_skill

__all__ = ["SKILLS", "ScriptedExpert", "SkillError", "validate_skill"]
