"""Hyperparameter sweeps: points x seeds trained inside one compiled program per static group.

spec     the spec language: swept dimensions, sampling, each point's config (PBT specs build on it)
plan     points grouped by static fields, one compiled program per group, block size
run      run_sweep / resume_sweep: each group's blocks of runs through the Session
ranking  the runs.csv rows, points ranked by mean and 95% CI over seeds, the ranking as text
record   the sweep directory
"""
