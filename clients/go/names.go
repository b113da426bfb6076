package taskq

import "strings"

const queuesPrefix = "queues/"

// QueueName is the full name of a queue given by id ("emails") or already by full name
// ("queues/emails").
func QueueName(queue string) string {
	if strings.HasPrefix(queue, queuesPrefix) {
		return queue
	}
	return queuesPrefix + queue
}

// TaskName is the full name ("queues/{queue}/tasks/{id}") of the task id in queue (an id
// or a full name). A task already given by full name is returned as it is.
func TaskName(queue, task string) string {
	if strings.HasPrefix(task, queuesPrefix) {
		return task
	}
	return QueueName(queue) + "/tasks/" + task
}
