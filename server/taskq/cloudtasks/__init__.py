"""Google Cloud Tasks' gRPC API (google.cloud.tasks.v2, and v2beta2 with its pull queues) on
taskq's own queues, so that Google's official clients work against taskq by changing only
the endpoint (docs/cloud-tasks.md). Message types come from Google's google-cloud-tasks
package."""
