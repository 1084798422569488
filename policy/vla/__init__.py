"""The learned vision-language-action policy, in LeRobot's layout (configuration, modeling, processor)."""

from policy.vla.configuration_vla import VLAConfig
from policy.vla.modeling_vla import VLAPolicy
from policy.vla.processor_vla import ObservationError, VLAProcessor

__all__ = ["ObservationError", "VLAConfig", "VLAPolicy", "VLAProcessor"]
