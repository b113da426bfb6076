package taskq

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPort is the port of an address that names none and is not a URL: the one `taskq
// serve` uses. A bare host means this port, never 443 (gRPC's own default, which would miss a
// server on 50051 without a word).
const DefaultPort = 50051

// AddressForms lists the accepted address forms; every [ErrInvalidAddress] error ends with it.
const AddressForms = "host[:port], [ipv6][:port], https://host[:port], http://host[:port], dns:///host[:port], " +
	"unix:path or ipv4:ip[:port],..."

// ErrInvalidAddress matches (errors.Is) the error of an address that is none of the accepted
// forms; the error's text says what is wrong.
var ErrInvalidAddress = errors.New("taskq: invalid server address")

// AddressTLS is what an address says about TLS.
type AddressTLS int

const (
	// TLSFromSettings: the address leaves it to the client's settings (TLS when [WithTLS] or
	// [WithTransportCredentials] is given, plain text otherwise).
	TLSFromSettings AddressTLS = iota
	// TLSAlways: an https:// address.
	TLSAlways
	// TLSNever: an http:// address; TLS settings with it are an error.
	TLSNever
)

// Address is a server address read by the rules every taskq client shares:
//
//	address                                       port                       TLS
//	host:port, [ipv6]:port                        as given                   when TLS settings are given
//	host, [ipv6]                                  50051, taskq's own         when TLS settings are given
//	https://host[:port]                           as given, else 443         always
//	http://host[:port]                            as given, else 80          never
//	dns:///host[:port], dns://dns-server/host[:port]  as given, else 50051   when TLS settings are given
//	unix:path, unix:///absolute/path              (a Unix socket)            when TLS settings are given
//	ipv4:ip[:port],..., ipv6:[ip][:port],...      each as given, else 50051  when TLS settings are given
//
// Anything else (another scheme, a path, query or user after the host, a port outside
// 1-65535, an IPv6 address without brackets, spaces) is refused by [ParseAddress] and [Dial]
// with what is wrong, instead of failing later in gRPC's resolver.
type Address struct {
	// Target is where the address leads, in gRPC's notation: host:port, dns://[server]/host:port,
	// unix:path or ipv4:/ipv6: lists, with the default port added.
	Target string
	// TLS is what the address says about TLS.
	TLS AddressTLS

	kind addressKind
}

// addressKind is which of the forms an address is, for Dial.
type addressKind int

const (
	endpointAddress addressKind = iota // host:port, from a bare host, host:port or a URL
	dnsAddress
	unixAddress
	listAddress
)

// ParseAddress reads a server address (see [Address]); a malformed one returns an error that
// matches [ErrInvalidAddress].
func ParseAddress(address string) (Address, error) {
	text := strings.TrimSpace(address)
	scheme, rest, separator := strings.Cut(text, ":")
	scheme = strings.ToLower(scheme)
	switch {
	case separator && (scheme == "http" || scheme == "https") && strings.HasPrefix(rest, "//"):
		return parseURL(address, rest[2:], scheme)
	case separator && scheme == "dns" && strings.HasPrefix(rest, "//"):
		authority, endpoint, slash := strings.Cut(rest[2:], "/")
		if !slash {
			return Address{}, invalidAddress(address, "dns: addresses are dns:///host:port (or dns://dns-server/host:port)")
		}
		target, err := parseEndpoint(address, endpoint)
		if err != nil {
			return Address{}, err
		}
		return Address{Target: "dns://" + authority + "/" + target, kind: dnsAddress}, nil
	case separator && (scheme == "ipv4" || scheme == "ipv6"):
		parts := strings.Split(rest, ",")
		for i, part := range parts {
			endpoint, err := parseIPEndpoint(address, scheme, part)
			if err != nil {
				return Address{}, err
			}
			parts[i] = endpoint
		}
		return Address{Target: scheme + ":" + strings.Join(parts, ","), kind: listAddress}, nil
	case separator && scheme == "unix":
		if strings.Trim(rest, "/") == "" {
			return Address{}, invalidAddress(address, "unix: needs the path of a socket")
		}
		return Address{Target: text, kind: unixAddress}, nil
	case strings.Contains(text, "://"):
		return Address{}, invalidAddress(address, scheme+":// is not supported")
	}
	target, err := parseEndpoint(address, text)
	if err != nil {
		return Address{}, err
	}
	return Address{Target: target}, nil
}

// parseURL reads the rest of an http:// or https:// address, after the "//".
func parseURL(address, rest, scheme string) (Address, error) {
	authority := rest
	tail := ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if tail != "" && tail != "/" {
		path, _, _ := strings.Cut(tail, "?")
		path, _, _ = strings.Cut(path, "#")
		// A URL that ends in "?" or "#" has an empty query or fragment: nothing after the host.
		if (path != "" && path != "/") || len(strings.Trim(tail[len(path):], "?#")) > 0 {
			return Address{}, invalidAddress(address, "a server address has no path, query or fragment")
		}
	}
	if strings.Contains(authority, "@") {
		return Address{}, invalidAddress(address, "a server address has no user name or password")
	}
	var host, port string
	if strings.HasPrefix(authority, "[") {
		end := strings.Index(authority, "]")
		if end < 0 {
			return Address{}, invalidAddress(address, "an IPv6 address opened with [ is closed with ]")
		}
		host, port = authority[1:end], authority[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return Address{}, invalidAddress(address, "only :port may follow an IPv6 address")
		}
		port = strings.TrimPrefix(port, ":")
		if host == "" {
			return Address{}, invalidAddress(address, "the host is missing")
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return Address{}, invalidAddress(address, fmt.Sprintf("%s is not an IPv6 address", quote(host)))
		}
		host = "[" + ip.String() + "]"
	} else {
		host, port, _ = strings.Cut(authority, ":")
		host = strings.ToLower(host) // as a URL's host is read
		if host == "" {
			return Address{}, invalidAddress(address, "the host is missing")
		}
		if !hostName.MatchString(host) {
			return Address{}, invalidAddress(address, fmt.Sprintf("%s is not a host name or IP address", quote(host)))
		}
	}
	number := 443
	if scheme == "http" {
		number = 80
	}
	if port != "" { // "https://host:" is the default port, as in a URL
		n, err := strconv.Atoi(port)
		if err != nil || !isDigits(port) || n > 65535 {
			return Address{}, invalidAddress(address, fmt.Sprintf("the port must be a number from 1 to 65535, not %s", quote(port)))
		}
		if n == 0 {
			return Address{}, invalidAddress(address, "port 0 cannot be connected to")
		}
		number = n
	}
	tls := TLSNever
	if scheme == "https" {
		tls = TLSAlways
	}
	return Address{Target: host + ":" + strconv.Itoa(number), TLS: tls}, nil
}

// hostName is a DNS name or an IPv4 address, as the clients accept them.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$`)

// parseEndpoint returns host:port from host, host:port, [ipv6] or [ipv6]:port, with the
// default port.
func parseEndpoint(address, text string) (string, error) {
	if strings.HasPrefix(text, "[") {
		end := strings.Index(text, "]")
		if end < 0 {
			return "", invalidAddress(address, "an IPv6 address opened with [ is closed with ]")
		}
		host, rest := text[1:end], text[end+1:]
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return "", invalidAddress(address, fmt.Sprintf("%s is not an IPv6 address", quote(host)))
		}
		if rest != "" && !strings.HasPrefix(rest, ":") {
			return "", invalidAddress(address, "only :port may follow an IPv6 address")
		}
		port := DefaultPort
		if rest != "" {
			var err error
			if port, err = parsePort(address, rest[1:]); err != nil {
				return "", err
			}
		}
		return "[" + host + "]:" + strconv.Itoa(port), nil
	}
	if strings.Count(text, ":") > 1 {
		return "", invalidAddress(address, "an IPv6 address goes in brackets, as in [::1]:50051")
	}
	host, portText, separator := strings.Cut(text, ":")
	if host == "" {
		return "", invalidAddress(address, "the host is missing")
	}
	if !hostName.MatchString(host) {
		return "", invalidAddress(address, fmt.Sprintf("%s is not a host name or IP address", quote(host)))
	}
	port := DefaultPort
	if separator {
		var err error
		if port, err = parsePort(address, portText); err != nil {
			return "", err
		}
	}
	return host + ":" + strconv.Itoa(port), nil
}

// parseIPEndpoint returns one ip:port of an ipv4: or ipv6: list, with the default port.
func parseIPEndpoint(address, scheme, text string) (string, error) {
	endpoint, err := parseEndpoint(address, text)
	if err != nil {
		return "", err
	}
	host := strings.Trim(endpoint[:strings.LastIndex(endpoint, ":")], "[]")
	ip, err := netip.ParseAddr(host)
	if err != nil || (scheme == "ipv4") != ip.Is4() {
		return "", invalidAddress(address, fmt.Sprintf("%s: lists %s addresses, not %s", scheme, scheme, quote(text)))
	}
	return endpoint, nil
}

func parsePort(address, text string) (int, error) {
	n, err := strconv.Atoi(text)
	if err != nil || !isDigits(text) || n < 1 || n > 65535 {
		return 0, invalidAddress(address, fmt.Sprintf("the port must be a number from 1 to 65535, not %s", quote(text)))
	}
	return n, nil
}

// addressError is a malformed address and what is wrong with it.
type addressError struct {
	address, reason string
}

func invalidAddress(address, reason string) error {
	return &addressError{address: address, reason: reason}
}

func (e *addressError) Error() string {
	return fmt.Sprintf("taskq: invalid server address %s: %s (use %s)", quote(e.address), e.reason, AddressForms)
}

func (e *addressError) Unwrap() error { return ErrInvalidAddress }

// quote puts text in single quotes, as the other clients' messages do, with control
// characters escaped.
func quote(text string) string {
	quoted := strconv.Quote(text)
	quoted = strings.ReplaceAll(quoted[1:len(quoted)-1], `\"`, `"`)
	return "'" + strings.ReplaceAll(quoted, "'", `\'`) + "'"
}
