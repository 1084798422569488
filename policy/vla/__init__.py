"""The learned vision-language-action policy, in LeRobot's layout (configuration, modeling, processor)."""

from policy.vla.configuration_vla import VLAConfig
from policy.vla.modeling_vla import VLAPolicy
from policy.vla.processor_vla import ObservationError, VLAProcessor
from policy.vla.runtime import AsyncChunkRunner, ChunkExecutor, RecedingHorizonExecutor, TemporalEnsembleExecutor, make_executor

__all__ = ["AsyncChunkRunner", "ChunkExecutor", "ObservationError", "RecedingHorizonExecutor", "TemporalEnsembleExecutor",
           "VLAConfig", "VLAPolicy", "VLAProcessor", "make_executor"]
