"""quotabot's rate budgets against the usual ways of calling a rate-limited API.

python -m bench.budgets [--quick] [--seed N] [--out bench/budgets/results/budgets.json]

workload.py      the demand (who asks what, when) and what the limits allow in the window
sandbox_host.py  a fresh sandbox per run, in a process of its own
harness.py       plays a workload against one system for a fixed window
systems.py       quotabot, in one process or as one of several replicas on Redis
baselines.py     the openai SDK, tenacity backoff, the cookbook's parallel processor
replica.py       the worker process of the two-replica run, and its orchestration
figures.py       outcomes -> figures, comparisons and targets
report.py        the tables, budgets.json and budgets.md
__main__.py      the command: every system on the same workload, then the report
"""
