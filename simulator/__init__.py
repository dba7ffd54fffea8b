"""Labelled synthetic LLM-API usage traffic: benign tenant profiles and distillation-attack scenarios.

Pure: :func:`generate` returns a :class:`Simulation` whose ``records()`` stream
the events (JSON lines, in event-time order, a few deliberately malformed) and
whose ``labels()`` give the ground truth. Same seed and config, same bytes.
"""

from simulator.core import (BENIGN_PROFILES, HARD_NEGATIVE_PROFILES, NEW_MODEL, SCENARIOS, AttackSpec, Record,
                            SimConfig, Simulation, generate, preset)

__all__ = ["BENIGN_PROFILES", "HARD_NEGATIVE_PROFILES", "NEW_MODEL", "SCENARIOS", "AttackSpec", "Record", "SimConfig",
           "Simulation", "generate", "preset"]
