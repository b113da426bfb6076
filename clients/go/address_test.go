package taskq_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	taskq "github.com/taskq/taskq/clients/go"
)

// The address rules every taskq client shares (the Python client's tests/client/test_address.py
// holds the same table): a URL's scheme says TLS and brings its default port, a bare host means
// taskq's port 50051 (never 443), and a malformed address is refused at once with what is wrong.

func TestAcceptedAddressesConnectWhereTheirFormSays(t *testing.T) {
	for _, c := range []struct {
		address, target string
		tls             taskq.AddressTLS
	}{
		{"127.0.0.1:50051", "127.0.0.1:50051", taskq.TLSFromSettings},
		{"taskq.example.com:8443", "taskq.example.com:8443", taskq.TLSFromSettings},
		{"taskq", "taskq:50051", taskq.TLSFromSettings},
		{"localhost", "localhost:50051", taskq.TLSFromSettings},
		{"[::1]:7000", "[::1]:7000", taskq.TLSFromSettings},
		{"[::1]", "[::1]:50051", taskq.TLSFromSettings},
		{"https://taskq.example.com", "taskq.example.com:443", taskq.TLSAlways},
		{"https://taskq.example.com/", "taskq.example.com:443", taskq.TLSAlways},
		{"HTTPS://taskq.example.com:8443", "taskq.example.com:8443", taskq.TLSAlways},
		{"https://[2001:db8::1]:9000", "[2001:db8::1]:9000", taskq.TLSAlways},
		{"http://127.0.0.1:50051", "127.0.0.1:50051", taskq.TLSNever},
		{"http://taskq.example.com", "taskq.example.com:80", taskq.TLSNever},
		{"dns:///taskq.example.com:50051", "dns:///taskq.example.com:50051", taskq.TLSFromSettings},
		{"dns:///taskq.example.com", "dns:///taskq.example.com:50051", taskq.TLSFromSettings},
		{"dns://8.8.8.8/taskq.example.com:7000", "dns://8.8.8.8/taskq.example.com:7000", taskq.TLSFromSettings},
		{"unix:/run/taskq.sock", "unix:/run/taskq.sock", taskq.TLSFromSettings},
		{"unix:///run/taskq.sock", "unix:///run/taskq.sock", taskq.TLSFromSettings},
		{"  localhost:50051\n", "localhost:50051", taskq.TLSFromSettings},
		{"ipv4:127.0.0.1:7001,127.0.0.1:7002", "ipv4:127.0.0.1:7001,127.0.0.1:7002", taskq.TLSFromSettings},
		{"ipv4:10.0.0.1", "ipv4:10.0.0.1:50051", taskq.TLSFromSettings},
		{"ipv6:[::1]:7001,[::2]", "ipv6:[::1]:7001,[::2]:50051", taskq.TLSFromSettings},
	} {
		parsed, err := taskq.ParseAddress(c.address)
		if err != nil || parsed.Target != c.target || parsed.TLS != c.tls {
			t.Errorf("ParseAddress(%q) = %q, %v, %v; want %q, %v", c.address, parsed.Target, parsed.TLS, err, c.target, c.tls)
		}
	}
}

func TestMalformedAddressesAreRefusedWithTheReason(t *testing.T) {
	for _, c := range []struct{ address, reason string }{
		{"", "the host is missing"},
		{"localhost:", "the port must be a number from 1 to 65535"},
		{"localhost:http", "the port must be a number from 1 to 65535, not 'http'"},
		{"localhost:70000", "the port must be a number from 1 to 65535"},
		{"localhost:0", "the port must be a number from 1 to 65535"},
		{"::1", "an IPv6 address goes in brackets"},
		{"[::1", "closed with ]"},
		{"[not-ipv6]:1", "is not an IPv6 address"},
		{"[::1]x", "only :port may follow an IPv6 address"},
		{"local host:1", "is not a host name or IP address"},
		{"localhost:50051/path", "the port must be a number"},
		{"https://taskq.example.com/v1", "no path, query or fragment"},
		{"https://taskq.example.com?x=1", "no path, query or fragment"},
		{"https://user:pw@taskq.example.com", "no user name or password"},
		{"https://", "the host is missing"},
		// Python's urllib says "Port out of range 0-65535" here.
		{"https://taskq.example.com:99999", "the port must be a number from 1 to 65535, not '99999'"},
		{"https://taskq.example.com:0", "port 0 cannot be connected to"},
		{"grpc://taskq.example.com:50051", "grpc:// is not supported"},
		{"dns://taskq.example.com", "dns:///host:port"},
		{"unix:", "needs the path of a socket"},
		{"ipv4:localhost:7001", "ipv4: lists ipv4 addresses, not 'localhost:7001'"},
		{"ipv4:127.0.0.1:7001,", "the host is missing"},
		{"ipv6:127.0.0.1", "ipv6: lists ipv6 addresses"},
	} {
		_, err := taskq.ParseAddress(c.address)
		if !errors.Is(err, taskq.ErrInvalidAddress) || !strings.Contains(err.Error(), c.reason) ||
			!strings.Contains(err.Error(), "https://host[:port]") {
			t.Errorf("ParseAddress(%q) = %v; want ErrInvalidAddress saying %q and the accepted forms", c.address, err, c.reason)
		}
	}
}

func TestTheMessageQuotesTheAddressAsGiven(t *testing.T) {
	_, err := taskq.ParseAddress("taskq.internal:grpc")
	want := "taskq: invalid server address 'taskq.internal:grpc': the port must be a number from 1 to 65535, " +
		"not 'grpc' (use host[:port], "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want it to start with %q", err, want)
	}
}

func TestDialRefusesAMalformedAddressAtOnceNotInTheResolver(t *testing.T) {
	for _, address := range []string{"taskq.example.com:fifty", "grpc://taskq.example.com", "::1"} {
		client, err := taskq.Dial(t.Context(), address)
		if !errors.Is(err, taskq.ErrInvalidAddress) {
			if client != nil {
				_ = client.Close()
			}
			t.Errorf("Dial(%q) = %v, want ErrInvalidAddress", address, err)
		}
	}
}

func TestTLSSettingsWithAnHTTPAddressAreRefused(t *testing.T) {
	_, err := taskq.Dial(t.Context(), "http://127.0.0.1:50051", taskq.WithTLS(taskq.TLSSettings{}))
	if !errors.Is(err, taskq.ErrInvalidAddress) || !strings.Contains(err.Error(), "http:// means plain text") {
		t.Errorf("Dial = %v, want http:// with TLS settings refused", err)
	}
}

// dialedAddress dials address with a dialer that records where gRPC connects (and connects
// nowhere), makes one call and returns the recorded address.
func dialedAddress(t *testing.T, address string, opts ...taskq.Option) string {
	t.Helper()
	var mu sync.Mutex
	dialed := ""
	dialer := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if dialed == "" {
			dialed = addr
		}
		return nil, errors.New("recorded, not connected")
	})
	opts = append(opts, taskq.WithoutRetry(), taskq.WithDialOptions(dialer))
	client, err := taskq.Dial(t.Context(), address, opts...)
	if err != nil {
		t.Fatalf("Dial(%q): %v", address, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := client.GetQueue(ctx, "q"); taskq.CodeOf(err) != codes.Unavailable && taskq.CodeOf(err) != codes.DeadlineExceeded {
		t.Errorf("GetQueue through a dialer that connects nowhere = %v, want UNAVAILABLE", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return dialed
}

func TestABareHostIsDialedOnPort50051AndAnHTTPSOneOn443(t *testing.T) {
	for address, want := range map[string]string{
		"127.0.0.1":               "127.0.0.1:50051",
		"[::1]":                   "[::1]:50051",
		"https://127.0.0.1":       "127.0.0.1:443",
		"http://127.0.0.1":        "127.0.0.1:80",
		"dns:///127.0.0.1":        "127.0.0.1:50051",
		"ipv4:127.0.0.1":          "127.0.0.1:50051",
		"127.0.0.1:7000":          "127.0.0.1:7000",
		"https://127.0.0.1:50052": "127.0.0.1:50052",
	} {
		if got := dialedAddress(t, address); got != want {
			t.Errorf("Dial(%q) connected to %q, want %q", address, got, want)
		}
	}
}
