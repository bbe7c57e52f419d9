"""Chaos runs: everything zkherd does, together, against a 3-server ZooKeeper ensemble, while
random faults happen; invariant checkers look all the time and a report says what they found.

    .venv/bin/python -m tests.chaos --seed 7 --duration 600 --report chaos.json
    make chaos SEED=7 DURATION=600

The seed fixes the fault schedule (schedule.py): a failing run is reproduced with its seed and
duration. See docs/reliability.md.
"""
