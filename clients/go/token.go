package taskq

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The environment variables a client reads its token from when given neither [WithToken] nor
// [WithTokenFile], as every taskq client does: the token, else a file holding it.
const (
	TokenEnv     = "TASKQ_TOKEN"
	TokenFileEnv = "TASKQ_TOKEN_FILE"
)

// ErrInvalidToken matches (errors.Is) the error of a token that cannot be used: empty, more
// than one word, characters a header cannot carry, or a token file that cannot be read.
var ErrInvalidToken = errors.New("taskq: invalid bearer token")

// ErrPlaintextToken matches (errors.Is) the error of [Dial] refusing to send a token in plain
// text to another machine: whoever can see the traffic could copy it and call as its holder.
var ErrPlaintextToken = errors.New("taskq: refusing to send a token in plain text")

// bearer is the token a client sends: given as such, or read from a file (again when the
// file changes: a rotated Kubernetes Secret).
type bearer struct {
	file string

	mu      sync.Mutex
	token   string
	fileID  os.FileInfo // what was read; nil before the first read
	readErr error
}

// bearerOf is the token of the settings, else the environment's; nil without one.
func bearerOf(s *clientSettings) (*bearer, error) {
	token, file := s.token, s.tokenFile
	if token == nil && file == "" {
		if value := os.Getenv(TokenEnv); value != "" {
			token = &value
		} else {
			file = os.Getenv(TokenFileEnv)
		}
	}
	switch {
	case token != nil && *token == "":
		return nil, nil // WithToken(""): none, whatever the environment says
	case token != nil:
		checked, err := checkToken(*token, "the token")
		if err != nil {
			return nil, err
		}
		return &bearer{token: checked}, nil
	case file != "":
		b := &bearer{file: file}
		if _, err := b.header(); err != nil { // an unreadable file fails now, not at the first call
			return nil, err
		}
		return b, nil
	}
	return nil, nil
}

// header is "Bearer <token>", the file read again first if it changed.
func (b *bearer) header() (string, error) {
	if b.file == "" {
		return "Bearer " + b.token, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	info, err := os.Stat(b.file)
	if err == nil && (b.fileID == nil || !os.SameFile(info, b.fileID) || info.Size() != b.fileID.Size() ||
		!info.ModTime().Equal(b.fileID.ModTime())) {
		var content []byte
		if content, err = os.ReadFile(b.file); err == nil {
			var token string
			if token, err = checkToken(string(content), "the token file "+b.file); err == nil {
				b.token, b.fileID = token, info
			}
		}
	}
	if err != nil && b.token == "" {
		if !errors.Is(err, ErrInvalidToken) {
			err = fmt.Errorf("%w: cannot read the token file %s: %v", ErrInvalidToken, b.file, err)
		}
		return "", err
	}
	// Mid-rotation (a file briefly gone or half written), the token read before is still the
	// best guess.
	return "Bearer " + b.token, nil
}

// checkToken returns the token without surrounding whitespace; an error unless it is one word
// of visible ASCII characters (a header value).
func checkToken(text, what string) (string, error) {
	token := strings.TrimSpace(text)
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			token = ""
			break
		}
	}
	if token == "" {
		return "", fmt.Errorf("%w: %s must be one word of visible ASCII characters", ErrInvalidToken, what)
	}
	return token, nil
}

// checkTransport refuses a token that would cross a network in plain text.
func checkTransport(address string, parsed Address, encrypted, allowPlaintext bool) error {
	if encrypted || allowPlaintext || isLocal(parsed) {
		return nil
	}
	return fmt.Errorf("%w to %s: anyone on the way could copy it and call as you. Connect with TLS "+
		"(https://..., or WithTLS), or allow it explicitly (AllowPlaintextToken) when the network itself is protected",
		ErrPlaintextToken, address)
}

// isLocal reports whether every server the address names is on this machine: a Unix socket,
// localhost or a loopback IP address. Traffic to it never crosses a network.
func isLocal(parsed Address) bool {
	var endpoints []string
	switch parsed.kind {
	case unixAddress:
		return true
	case listAddress:
		_, list, _ := strings.Cut(parsed.Target, ":")
		endpoints = strings.Split(list, ",")
	default:
		endpoints = []string{parsed.Target[strings.LastIndex(parsed.Target, "/")+1:]}
	}
	for _, endpoint := range endpoints {
		host := strings.Trim(endpoint[:strings.LastIndex(endpoint, ":")], "[]")
		if strings.EqualFold(host, "localhost") || strings.EqualFold(host, "localhost.") {
			continue
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// tokenConn sends "authorization: Bearer <token>" with every call and stream on a connection.
type tokenConn struct {
	grpc.ClientConnInterface
	bearer *bearer
	err    error // the token cannot be used (NewClient): every call fails with it
}

func (c *tokenConn) context(ctx context.Context) (context.Context, error) {
	if c.err != nil {
		return nil, c.err
	}
	header, err := c.bearer.header()
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", header), nil
}

func (c *tokenConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx, err := c.context(ctx)
	if err != nil {
		return err
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

func (c *tokenConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string,
	opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := c.context(ctx)
	if err != nil {
		return nil, err
	}
	return c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
}

// withToken wraps conn to send the token; conn itself without one.
func withToken(conn grpc.ClientConnInterface, b *bearer, err error) grpc.ClientConnInterface {
	if b == nil && err == nil {
		return conn
	}
	return &tokenConn{ClientConnInterface: conn, bearer: b, err: err}
}
