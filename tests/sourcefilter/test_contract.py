"""The shared flow contract (tests/flows/contract.py) over the source-filter flows: exact inverse,
log-det == autograd Jacobian in float64, gradients, state-dict round trip and bad inputs."""

from __future__ import annotations

from tests.flows.contract import Case, contract_suite
from waveflow_py.sourcefilter import FrameGain, LongTermPredictor, LPCFilter, PreEmphasis

CASES: dict[str, Case] = {
    # envelope filters (context: per-segment log-gain and LPC coefficients, hop 4)
    "lpc": Case(lambda: LPCFilter(3, 4), (4, 12), (4, 3, 4), context_scale=0.3),
    "lpc-hop-below-order": Case(lambda: LPCFilter(5, 2), (3, 8), (3, 4, 6), context_scale=0.2),
    "frame-gain": Case(lambda: FrameGain(4), (4, 12), (4, 3, 1), context_scale=0.5),
    "preemphasis": Case(lambda: PreEmphasis(0.9, hop=4), (4, 11), any_length=True),
    # pitch predictor (context: per-segment lag and gain, clamped to 2..6 and [0, 0.999]; hop 4)
    "ltp": Case(lambda: LongTermPredictor(4, 2, 6), (4, 12), (4, 3, 2), context_scale=3.0),
}

(
    test_invertible_float32,
    test_logdet_matches_autograd_jacobian_float64,
    test_gradients_reach_every_parameter,
    test_state_dict_roundtrip,
    test_bad_inputs_raise_value_error,
) = contract_suite(CASES)
