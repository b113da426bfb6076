"""The scenarios of the benchmark issue: (a)+(c) push.py, (b) pull.py, (d) scheduled.py,
(e) backlog.py, (f) ratelimit.py."""
