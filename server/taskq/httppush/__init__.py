"""HTTP push: the server sends the tasks of queues with an HTTP target to worker services as
HTTP requests (delivery.py), under the same dispatch machinery as streams (core/dispatch.py)."""
