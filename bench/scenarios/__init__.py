"""The scenarios of the benchmark issue: (a)+(c) push.py, (b) pull.py, (d) scheduled.py,
(e) backlog.py, (f) ratelimit.py, (g)+(h) postgres.py; and (i) httppush.py (HTTP push)."""
