"""gRPC servicers: validate, call core, convert. Nothing else."""
