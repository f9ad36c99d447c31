"""quotabot's benchmarks, one package each, run from the repository root as
``python -m bench.<name>``; each writes its results to ``bench/<name>/results/``.

budgets/    rate budgets against the openai SDK, tenacity backoff and the cookbook's processor
slack_ack/  signed Slack events acknowledged per second by one ``quotabot serve``
slack_cpu/  CPU time of that process per event and per answer
load/       two replicas on PostgreSQL and Redis under hundreds of Slack and Discord users
claims/     answer-once claims: group commit against one transaction each
digest/     digests and /usage on rollups against the raw rows, as usage grows
common/     what they share: child processes, statistics, tables and result files

The fakes of Slack's and Discord's APIs they use are the tests' own, in ``fakes/``.
See bench/README.md.
"""
