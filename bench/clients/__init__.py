"""Each system's side of the scenarios, run inside client processes (see bench.procs)."""
