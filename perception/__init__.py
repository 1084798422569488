"""Perception: turns observations (RGB-D, proprioception) into a belief. Arrives with issue 6."""
