package taskq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// Coalescing: calls made close together become one batch RPC.
//
// Every RPC costs the server about as much as a hundred items of a batch, so CreateTask
// calls made within a couple of milliseconds of each other (from any goroutines) go out as
// one BatchCreateTasks per queue, as Pub/Sub's publisher does; the PullWorker does the same
// with its deletes. Each caller still gets its own result or error.
//
// A batch goes out when the first of these happens: MaxDelay has passed since its first
// item; it holds MaxItems items, or the next item would take it past MaxBytes; the client
// is closed.

// maxBatchItems is the most items the server takes in one batch call.
const maxBatchItems = 1000

// BatchSettings is how CreateTask calls are coalesced. Zero fields take the defaults.
type BatchSettings struct {
	// MaxDelay is how long a call waits for others to share its batch, counted from the
	// batch's first call. Default 2 ms.
	MaxDelay time.Duration
	// MaxItems is the most items per batch call, 1 to 1000. Default 500.
	MaxItems int
	// MaxBytes bounds the encoded items of one batch call (the server refuses messages
	// above 32 MiB). A single larger item still goes, alone. Default 16 MiB.
	MaxBytes int
}

func (s BatchSettings) withDefaults() BatchSettings {
	if s.MaxDelay <= 0 {
		s.MaxDelay = 2 * time.Millisecond
	}
	if s.MaxItems <= 0 {
		s.MaxItems = 500
	}
	s.MaxItems = min(s.MaxItems, maxBatchItems)
	if s.MaxBytes <= 0 {
		s.MaxBytes = 16 << 20
	}
	return s
}

// outcome is one item's result or error.
type outcome[R any] struct {
	value R
	err   error
}

// A batcher coalesces items by key (a queue, plus the outgoing metadata of the caller's
// context) and sends each batch with send, which returns one outcome per item; an error
// returned by send fails every item of the batch.
type batcher[I, R any] struct {
	settings BatchSettings
	send     func(ctx context.Context, key string, items []I) ([]outcome[R], error)
	size     func(I) int

	mu       sync.Mutex
	open     map[string]*batch[I, R]
	closed   bool
	inFlight sync.WaitGroup
}

type batch[I, R any] struct {
	key     string
	parent  string
	ctx     context.Context // the first caller's, for its values and metadata
	items   []I
	waiters []chan outcome[R]
	bytes   int
	// deadline is the latest of the callers' deadlines; unbounded if one has none.
	deadline  time.Time
	unbounded bool
	timer     *time.Timer
}

func newBatcher[I, R any](settings BatchSettings, send func(context.Context, string, []I) ([]outcome[R], error), size func(I) int) *batcher[I, R] {
	return &batcher[I, R]{settings: settings, send: send, size: size, open: map[string]*batch[I, R]{}}
}

// submit adds item to the open batch of parent and waits for its outcome or for ctx.
func (b *batcher[I, R]) submit(ctx context.Context, parent string, item I) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, contextError(ctx)
	}
	key := parent + "\x00" + metadataKey(ctx)
	size := b.size(item)
	done := make(chan outcome[R], 1)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return zero, ErrClientClosed
	}
	current := b.open[key]
	if current != nil && len(current.items) > 0 && current.bytes+size > b.settings.MaxBytes {
		b.sendLocked(current)
		current = nil
	}
	if current == nil {
		current = &batch[I, R]{key: key, parent: parent, ctx: ctx}
		b.open[key] = current
		current.timer = time.AfterFunc(b.settings.MaxDelay, func() { b.expire(current) })
	}
	current.items = append(current.items, item)
	current.waiters = append(current.waiters, done)
	current.bytes += size
	if deadline, ok := ctx.Deadline(); !ok {
		current.unbounded = true
	} else if deadline.After(current.deadline) {
		current.deadline = deadline
	}
	if len(current.items) >= b.settings.MaxItems || current.bytes >= b.settings.MaxBytes {
		b.sendLocked(current)
	}
	b.mu.Unlock()

	select {
	case result := <-done:
		return result.value, result.err
	case <-ctx.Done():
		// The batch goes out anyway: the item may or may not be created.
		return zero, contextError(ctx)
	}
}

// expire sends the batch whose delay ran out, unless it has gone already.
func (b *batcher[I, R]) expire(expired *batch[I, R]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open[expired.key] == expired {
		b.sendLocked(expired)
	}
}

// sendLocked takes the batch out of the open ones and sends it in the background.
func (b *batcher[I, R]) sendLocked(full *batch[I, R]) {
	delete(b.open, full.key)
	full.timer.Stop()
	b.inFlight.Add(1)
	go func() {
		defer b.inFlight.Done()
		b.deliver(full)
	}()
}

func (b *batcher[I, R]) deliver(full *batch[I, R]) {
	// The callers may give up (their contexts end) while the call is out; the call itself
	// lasts as long as the most patient of them allows.
	ctx := context.WithoutCancel(full.ctx)
	if !full.unbounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, full.deadline)
		defer cancel()
	}
	outcomes, err := b.send(ctx, full.parent, full.items)
	if err == nil && len(outcomes) != len(full.items) {
		err = fmt.Errorf("taskq: the server answered %d results for %d items", len(outcomes), len(full.items))
	}
	for i, waiter := range full.waiters {
		if err != nil {
			waiter <- outcome[R]{err: err}
		} else {
			waiter <- outcomes[i]
		}
	}
}

// close sends every open batch and waits for all batches to be answered. Later submits
// fail with ErrClientClosed.
func (b *batcher[I, R]) close() {
	b.mu.Lock()
	b.closed = true
	for _, open := range b.open {
		b.sendLocked(open)
	}
	b.mu.Unlock()
	b.inFlight.Wait()
}

// metadataKey keeps callers with different outgoing metadata (credentials, tracing) in
// different batches: a batch carries its first caller's metadata.
func metadataKey(ctx context.Context) string {
	md, ok := metadata.FromOutgoingContext(ctx)
	if !ok || md.Len() == 0 {
		return ""
	}
	keys := make([]string, 0, md.Len())
	for key := range md {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	var out strings.Builder
	for _, key := range keys {
		out.WriteString(key)
		for _, value := range md[key] {
			out.WriteString("\x01" + value)
		}
		out.WriteString("\x00")
	}
	return out.String()
}

// sendCreates is the create batcher's call: one BatchCreateTasks. An item's error names
// its fields as a single CreateTask would.
func (c *Client) sendCreates(ctx context.Context, parent string, items []*taskqv1.CreateTaskRequest) ([]outcome[*taskqv1.Task], error) {
	response, err := c.tasks.BatchCreateTasks(ctx, &taskqv1.BatchCreateTasksRequest{Parent: parent, Requests: items})
	if err != nil {
		return nil, convertError(ctx, err)
	}
	outcomes := make([]outcome[*taskqv1.Task], len(response.GetResults()))
	for i, result := range response.GetResults() {
		if task := result.GetTask(); task != nil {
			outcomes[i].value = task
		} else if e := FromStatus(result.GetError()); e != nil {
			outcomes[i].err = e.withoutFieldPrefix(fmt.Sprintf("requests[%d].", i))
		} else {
			outcomes[i].err = fmt.Errorf("taskq: the server answered an empty result for item %d", i)
		}
	}
	return outcomes, nil
}

// createSize is an item's share of a batch message: its encoding plus the field's tag and
// length.
func createSize(request *taskqv1.CreateTaskRequest) int {
	return proto.Size(request) + 6
}
