"""taskq's benchmark harness: taskq against beanstalkd and NATS JetStream on one machine, in
one run (`python -m bench`, see bench/README.md)."""
