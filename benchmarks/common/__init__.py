"""What the benchmarks share: servers as child processes, wrk runs and their parsing, the
benchmark models, and the facts about the machine a report starts with."""
