// Package taskq is the Go client of taskq, a self-hosted task-queue server with a gRPC API.
//
// It is a thin layer over the generated stubs in gen/taskq/v1 (package taskqv1):
//
//   - [Client]: one method per RPC of TaskService and QueueService, taking Go values
//     (time.Duration, time.Time, small option structs) and returning the generated messages.
//     Unary calls failing with UNAVAILABLE (a restart of the server) are made again, with
//     the same request, for up to 15 s ([WithRetry]); the connection keeps itself alive
//     within the server's ping policy. [Client.CreateTask] calls made close together are
//     sent as one BatchCreateTasks call ([BatchSettings]).
//   - [Error]: every failed call returns one, with the canonical gRPC code, the stable
//     ErrorInfo reason (LEASE_LOST, QUEUE_NOT_FOUND, ...) and the invalid fields; match
//     reasons with errors.Is and the sentinels ([ErrLeaseLost], ...) or helpers such as
//     [IsLeaseLost].
//   - [Worker]: runs a [Handler] for each task of a push queue, delivered over StreamTasks.
//   - [PullWorker]: the lease → handle → delete loop over a pull queue.
//   - HTTP push: [HTTPTarget] and [HTTPRequest] for queues that deliver tasks as HTTP
//     requests, and [VerifyRequest] / [VerifySignature] for the services that receive them.
//
// Connecting: [Dial] reads the address by the rules all taskq clients share ([Address]: a bare
// host means port 50051, https:// means TLS, dns:///, unix: and ipv4:/ipv6: lists as gRPC has
// them, anything malformed refused at once), connects over TLS or mTLS with [WithTLS], and
// sends a bearer token with every call and stream with [WithToken].
//
// Names: methods accept a queue as an id ("emails") or a full name ("queues/emails"); tasks
// are named by their full name ("queues/emails/tasks/abc"), as the server returns them.
package taskq
