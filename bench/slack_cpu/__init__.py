"""CPU time of one ``quotabot serve`` per Slack event and per answer (``bench.slack_cpu``)."""
