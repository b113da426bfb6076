package taskq

import (
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
)

// connectionOptions returns what grpc.NewClient is given for address and the settings: the
// target in grpc-go's notation and the dial options that carry the credentials (and, for an
// ipv4:/ipv6: list, the resolver grpc-go lacks).
func connectionOptions(address string, s *clientSettings) (string, []grpc.DialOption, error) {
	parsed, err := ParseAddress(address)
	if err != nil {
		return "", nil, err
	}
	if s.credentials != nil && s.tls != nil {
		return "", nil, errors.New("taskq: WithTransportCredentials and WithTLS both choose the credentials: give one")
	}
	secure := s.tls != nil || (s.credentials != nil && s.credentials.Info().SecurityProtocol != "insecure")
	if parsed.TLS == TLSNever && secure {
		return "", nil, invalidAddress(address,
			"http:// means plain text, but TLS settings were given (use https:// or host:port)")
	}
	creds := s.credentials
	if creds == nil {
		if s.tls == nil && parsed.TLS != TLSAlways {
			creds = insecure.NewCredentials()
		} else {
			settings := TLSSettings{}
			if s.tls != nil {
				settings = *s.tls
			}
			if creds, err = settings.Credentials(); err != nil {
				return "", nil, err
			}
		}
	}
	b, err := bearerOf(s)
	if err != nil {
		return "", nil, err
	}
	if b != nil {
		if err := checkTransport(address, parsed, creds.Info().SecurityProtocol != "insecure", s.plaintext); err != nil {
			return "", nil, err
		}
	}
	options := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	target := parsed.Target
	switch parsed.kind {
	case endpointAddress:
		// Said explicitly: grpc-go would take a host named like a resolver (unix, passthrough)
		// for a scheme.
		target = "dns:///" + target
	case listAddress:
		scheme, list, _ := strings.Cut(target, ":")
		endpoints := strings.Split(list, ",")
		// The authority (and the name TLS checks, unless a server name is given) is the
		// first server's: grpc-go would use the whole list.
		options = append(options, grpc.WithResolvers(&listResolver{scheme: scheme, endpoints: endpoints}),
			grpc.WithAuthority(endpoints[0]))
	}
	return target, options, nil
}

// listResolver resolves an ipv4:/ipv6: list to its addresses, as gRPC's C core does: the
// default policy (pick first) uses the first that connects.
type listResolver struct {
	scheme    string
	endpoints []string
}

func (r *listResolver) Scheme() string { return r.scheme }

func (r *listResolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addresses := make([]resolver.Address, len(r.endpoints))
	for i, endpoint := range r.endpoints {
		addresses[i] = resolver.Address{Addr: endpoint}
	}
	// An error here is the policy's complaint about the addresses; it reports it itself.
	_ = cc.UpdateState(resolver.State{Addresses: addresses})
	return fixedList{}, nil
}

// fixedList is a resolved list: there is nothing to look up again.
type fixedList struct{}

func (fixedList) ResolveNow(resolver.ResolveNowOptions) {}
func (fixedList) Close()                                {}
