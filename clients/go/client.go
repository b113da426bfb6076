package taskq

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	taskqv1 "github.com/taskq/taskq/clients/go/gen/taskq/v1"
)

// DefaultAddress is where `taskq serve` listens by default.
const DefaultAddress = "127.0.0.1:50051"

const (
	// maxMessageBytes is the largest message sent or received: the server's default limit.
	maxMessageBytes = 32 << 20

	// keepaliveTime is how long a connection with calls in progress may stay silent before
	// the client pings. The server accepts pings every 10 s without data and answers faster
	// ones with GOAWAY "too_many_pings", so this stays well above.
	keepaliveTime = 30 * time.Second
	// keepaliveTimeout is how long to wait for a ping's answer before the connection is
	// considered dead.
	keepaliveTimeout = 10 * time.Second

	// retryBufferBytes is how much of a call's request is kept for a transparent retry (of a
	// request that never reached the server). gRPC's default (256 KiB) would leave creates of
	// large tasks (up to 1 MiB) without one.
	retryBufferBytes = 4 << 20

	// reconnectBaseDelay and reconnectMaxDelay bound the wait before reconnecting to a server
	// that went away. gRPC's defaults (1 s growing to 120 s) suit fleets of servers; with one
	// taskq server they would leave a worker idle for minutes after a restart of a few
	// seconds. A connection waiting to reconnect fails calls at once, so the maximum is the
	// calls' own longest retry wait: a call retrying across a restart finds the connection
	// back soon after the server, well within its retry budget.
	reconnectBaseDelay = 250 * time.Millisecond
	reconnectMaxDelay  = defaultMaxBackoff
)

// Client is a connection to one taskq server. It is safe for concurrent use; make one per
// process and share it.
type Client struct {
	conn   grpc.ClientConnInterface
	closer interface{ Close() error } // the connection, when Dial opened it
	// tasks and queues call through the connection, retrying UNAVAILABLE (see retry.go).
	tasks  taskqv1.TaskServiceClient
	queues taskqv1.QueueServiceClient

	// creates coalesces CreateTask calls; nil when batching is off.
	creates *batcher[*taskqv1.CreateTaskRequest, *taskqv1.Task]

	closeOnce sync.Once
	closeErr  error
	// closing is closed by Close: calls waiting to be retried give up.
	closing chan struct{}
}

// An Option configures a Client.
type Option func(*clientSettings)

type clientSettings struct {
	credentials credentials.TransportCredentials
	tls         *TLSSettings // nil: none given
	token       *string      // nil: none given
	tokenFile   string
	plaintext   bool // AllowPlaintextToken
	dialOptions []grpc.DialOption
	batching    *BatchSettings // nil: off
	retry       *CallRetry     // nil: off
}

// WithTransportCredentials connects with credentials of the caller's making (TLS or other)
// instead of those the address and [WithTLS] would choose; not with [WithTLS], nor with an
// http:// address unless they are insecure ones. Only [Dial] uses it.
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(s *clientSettings) { s.credentials = creds }
}

// WithTLS connects over TLS with these settings (a CA file, a client certificate for mTLS, a
// server name), whatever the address's form; an https:// address means TLS without them (the
// system's CAs). The files are read by [Dial], which names a file it cannot use. Only [Dial]
// uses it; for [NewClient], see [TLSSettings.Credentials].
func WithTLS(settings TLSSettings) Option {
	return func(s *clientSettings) { s.tls = &settings }
}

// WithToken sends "authorization: Bearer <token>" with every call, the push Worker's streams
// and calls on [Client.Conn] included. "" sends none, whatever the environment says. Without
// WithToken or [WithTokenFile], the client sends $TASKQ_TOKEN, else the token in the file
// $TASKQ_TOKEN_FILE names, else none. A token that is not one word of visible ASCII characters
// is refused with [ErrInvalidToken]. [Dial] refuses to send a token in plain text to another
// machine ([ErrPlaintextToken]) unless [AllowPlaintextToken].
func WithToken(token string) Option {
	return func(s *clientSettings) { s.token, s.tokenFile = &token, "" }
}

// WithTokenFile sends the token held in a file (surrounding whitespace ignored), read when the
// client is made and again before a call when the file has changed (a rotated Kubernetes
// Secret); a file that cannot be read then leaves the previous token in use. See [WithToken].
func WithTokenFile(path string) Option {
	return func(s *clientSettings) { s.token, s.tokenFile = nil, path }
}

// AllowPlaintextToken lets [Dial] send a token over a plain-text connection to another machine,
// for a network protected otherwise (a service mesh's mTLS between sidecars). Without it, a
// token goes in plain text only to this machine (localhost, loopback addresses, Unix sockets).
func AllowPlaintextToken() Option {
	return func(s *clientSettings) { s.plaintext = true }
}

// WithDialOptions adds gRPC dial options (interceptors, per-RPC credentials, a custom
// resolver, ...) after the client's own, so they can override them. Only [Dial] uses it.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(s *clientSettings) { s.dialOptions = append(s.dialOptions, opts...) }
}

// WithBatching sets how CreateTask calls made close together are coalesced into
// BatchCreateTasks calls. Batching is on by default with the zero BatchSettings (2 ms,
// at most 500 tasks per call).
func WithBatching(settings BatchSettings) Option {
	return func(s *clientSettings) { s.batching = &settings }
}

// WithoutBatching sends each CreateTask call on its own, at once.
func WithoutBatching() Option {
	return func(s *clientSettings) { s.batching = nil }
}

// Dial returns a client for the server at address: host:port, a bare host (port 50051),
// https://host[:port] (TLS, 443 without a port), http://host[:port], dns:///host[:port],
// unix:path or an ipv4:/ipv6: list (see [Address]). A malformed address returns an error
// matching [ErrInvalidAddress], TLS settings that cannot be used one matching
// [ErrInvalidTLSSettings]. It does not wait for the connection: gRPC connects in the
// background, and calls wait for it (failing with UNAVAILABLE once their retries are spent, if
// the server cannot be reached, or refuses the TLS handshake). ctx is only checked, not kept.
// Close the client when done.
func Dial(ctx context.Context, address string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := settingsOf(opts)
	target, connection, err := connectionOptions(address, s)
	if err != nil {
		return nil, err
	}
	dialOptions := append(DialOptions(), connection...)
	dialOptions = append(dialOptions, s.dialOptions...)
	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("taskq: dial %s: %w", address, err)
	}
	conn.Connect()
	c := newClient(conn, s)
	c.closer = conn
	return c, nil
}

// NewClient returns a client that uses an existing connection, which [Client.Close] leaves
// open. Build it with [DialOptions] to get the client's reconnection and keepalive settings.
// Of the options, batching and retries apply.
func NewClient(conn grpc.ClientConnInterface, opts ...Option) *Client {
	return newClient(conn, settingsOf(opts))
}

func settingsOf(opts []Option) *clientSettings {
	s := &clientSettings{batching: &BatchSettings{}, retry: &CallRetry{}}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

func newClient(conn grpc.ClientConnInterface, s *clientSettings) *Client {
	// Dial has checked the token; NewClient's calls fail with what is wrong with it.
	b, tokenErr := bearerOf(s)
	c := &Client{conn: withToken(conn, b, tokenErr), closing: make(chan struct{})}
	calls := conn
	if s.retry != nil {
		calls = &retryingConn{ClientConnInterface: conn, policy: s.retry.withDefaults(), closed: c.closing}
	}
	// Outside the retries, which resend the call's context, metadata included.
	calls = withToken(calls, b, tokenErr)
	c.tasks = taskqv1.NewTaskServiceClient(calls)
	c.queues = taskqv1.NewQueueServiceClient(calls)
	if s.batching != nil {
		c.creates = newBatcher(s.batching.withDefaults(), c.sendCreates, createSize)
	}
	return c
}

// DialOptions are the gRPC dial options a taskq connection needs, without credentials:
// quick reconnection to a restarted server, keepalive pings within the server's policy, and
// the server's message-size limit. They hold no retry policy (service config): the [Client]
// retries calls itself (see [WithRetry]).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  reconnectBaseDelay,
				Multiplier: backoff.DefaultConfig.Multiplier,
				Jitter:     backoff.DefaultConfig.Jitter,
				MaxDelay:   reconnectMaxDelay,
			},
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
			// An idle connection has nothing to keep alive; pinging it would only count
			// against the server's ping policy.
			PermitWithoutStream: false,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
			grpc.MaxRetryRPCBufferSize(retryBufferBytes),
		),
		grpc.WithUserAgent("taskq-go"),
	}
}

// Close sends the creates still waiting to be batched and waits for their answers, then
// closes the connection if [Dial] opened it. Calls made after Close fail.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.creates != nil {
			c.creates.close()
		}
		close(c.closing)
		if c.closer != nil {
			c.closeErr = c.closer.Close()
		}
	})
	return c.closeErr
}

// Conn is the client's connection, for calls to other services on the same server (health,
// reflection); they carry the client's token.
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// TaskService is the generated TaskService stub on the client's connection, for what the
// client's methods do not cover. Its unary calls are retried as the client's own are (see
// [WithRetry]). Its errors are plain gRPC status errors; [FromError] converts them.
func (c *Client) TaskService() taskqv1.TaskServiceClient { return c.tasks }

// QueueService is the generated QueueService stub on the client's connection.
func (c *Client) QueueService() taskqv1.QueueServiceClient { return c.queues }
