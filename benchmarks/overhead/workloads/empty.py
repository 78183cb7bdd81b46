"""Empty workload: measures the start-up time of a traced process."""
