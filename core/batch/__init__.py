"""Batch conversion of many photos (`tressel batch`) and the farm jobs that run it in chunks.

`items` turns inputs into numbered items, `runner` converts them resumably with one model
load, `farm` writes Open Job Description templates and Deadline Cloud job bundles.
"""
