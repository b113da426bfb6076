package taskq

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// ErrInvalidToken matches (errors.Is) the error of a bearer token that cannot be sent in a
// header: one with spaces, control or non-ASCII characters.
var ErrInvalidToken = errors.New("taskq: a bearer token is visible ASCII characters without spaces")

// validToken reports whether token can go into "authorization: Bearer <token>".
func validToken(token string) bool {
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return false
		}
	}
	return true
}

// tokenConn sends "authorization: Bearer <token>" with every call and stream on a connection.
type tokenConn struct {
	grpc.ClientConnInterface
	header string // "Bearer <token>"; "" when the token is invalid
}

func (c *tokenConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if c.header == "" {
		return ErrInvalidToken
	}
	return c.ClientConnInterface.Invoke(metadata.AppendToOutgoingContext(ctx, "authorization", c.header),
		method, args, reply, opts...)
}

func (c *tokenConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string,
	opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.header == "" {
		return nil, ErrInvalidToken
	}
	return c.ClientConnInterface.NewStream(metadata.AppendToOutgoingContext(ctx, "authorization", c.header),
		desc, method, opts...)
}

func withToken(conn grpc.ClientConnInterface, token string) grpc.ClientConnInterface {
	if token == "" {
		return conn
	}
	header := ""
	if validToken(token) {
		header = "Bearer " + token
	}
	return &tokenConn{ClientConnInterface: conn, header: header}
}
