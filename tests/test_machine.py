"""The machine probe: a positive speed, torch's thread setting left as it was."""

import torch

from tailor_evo.machine import MachineSpeed, matmul_gflops, probe_machine


def test_the_probe_restores_torch_threads_and_measures_a_positive_speed():
    before = torch.get_num_threads()
    assert matmul_gflops(hidden=32, tokens=64, threads=1, repeats=2) > 0
    assert torch.get_num_threads() == before


def test_a_probe_survives_the_round_trip_through_a_summary():
    speed = probe_machine()
    again = MachineSpeed.from_dict({**speed.to_dict(), "_seconds": 1.0})
    assert again == speed and str(speed.cores) in speed.summary() and speed.cpu in speed.summary()
