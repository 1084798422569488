"""Policies: the scripted expert, datasets and the VLA. Arrive with issues 3 and 7."""
