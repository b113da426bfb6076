// Resource names: `queues/{queue_id}` and `queues/{queue_id}/tasks/{task_id}`.
//
// The client accepts a bare queue id wherever a queue is named, and a Task (or anything with
// a `name`) wherever a task is. It does not validate ids: the server's INVALID_ARGUMENT, with
// the field and the allowed form, stays the one source of truth.

const QUEUES = "queues/";
const TASKS = "/tasks/";

/** `queues/q` for `q` or `queues/q`; a task name gives its queue's name. */
export function queueName(queue: string): string {
  if (!queue.startsWith(QUEUES)) {
    // A bare id; anything with a slash is passed on for the server to refuse.
    return queue.includes("/") ? queue : QUEUES + queue;
  }
  const tasks = queue.indexOf(TASKS);
  return tasks < 0 ? queue : queue.slice(0, tasks);
}

/** The full name of a task given by its name or as a Task (or `{ name }`). */
export function taskName(task: string | { readonly name: string }): string {
  return typeof task === "string" ? task : task.name;
}

/** The name of a task of `queue` given by its id (`t`) or its full name (kept as it is). */
export function taskNameIn(queue: string, idOrName: string): string {
  return idOrName.startsWith(QUEUES) ? idOrName : `${queueName(queue)}${TASKS}${idOrName}`;
}

/** The id part of a task name (the whole string if it is not a full name). */
export function taskId(name: string): string {
  const tasks = name.lastIndexOf(TASKS);
  return tasks < 0 ? name : name.slice(tasks + TASKS.length);
}
