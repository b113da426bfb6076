package taskq

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"google.golang.org/grpc/credentials"
)

// ErrInvalidTLSSettings matches (errors.Is) the error of TLS settings that cannot be used: a
// file that cannot be read or holds no PEM certificate or key, a certificate without its key.
// The error's text names the setting and the file.
var ErrInvalidTLSSettings = errors.New("taskq: invalid TLS settings")

// TLSSettings are how a client connects over TLS. Every field is optional: the zero value is
// TLS that trusts the system's CAs. Given to [WithTLS], they mean TLS whatever the address's
// form (except http://, which refuses them).
type TLSSettings struct {
	// CAFile holds the CA certificates (PEM) that sign the server's certificate; empty: the
	// system's roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate chain and private key (PEM) for
	// servers that require client certificates (mTLS); both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name the server's certificate must hold when it is not the address's
	// host (the server is reached by IP address, through a tunnel or a load balancer's own
	// name). It is also sent as the TLS server name (SNI).
	ServerName string
}

// Config returns the crypto/tls configuration of the settings, reading the files now.
func (s TLSSettings) Config() (*tls.Config, error) {
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, tlsError("CertFile and KeyFile go together: give both for a client certificate, or neither")
	}
	config := &tls.Config{ServerName: s.ServerName, MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		ca, err := readPEM("CAFile", s.CAFile, "CERTIFICATE")
		if err != nil {
			return nil, err
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(ca) {
			return nil, tlsError(fmt.Sprintf("CAFile %s holds no usable PEM certificate", s.CAFile))
		}
	}
	if s.CertFile != "" {
		chain, err := readPEM("CertFile", s.CertFile, "CERTIFICATE")
		if err != nil {
			return nil, err
		}
		key, err := readPEM("KeyFile", s.KeyFile, "PRIVATE KEY")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, tlsError(fmt.Sprintf("CertFile %s and KeyFile %s are not a certificate and its key: %v",
				s.CertFile, s.KeyFile, err))
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// Credentials returns gRPC transport credentials of the settings, reading the files now: for a
// connection made with [DialOptions] and given to [NewClient].
func (s TLSSettings) Credentials() (credentials.TransportCredentials, error) {
	config, err := s.Config()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(config), nil
}

// readPEM returns the file's contents; an error naming the setting if it cannot be read or
// holds no PEM block of pemType (gRPC would only fail the handshake later, without naming the
// file).
func readPEM(setting, path, pemType string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		var pathError *fs.PathError
		if errors.As(err, &pathError) {
			err = pathError.Err
		}
		return nil, tlsError(fmt.Sprintf("cannot read %s %s: %v", setting, path, err))
	}
	if !bytes.Contains(content, []byte(pemType+"-----")) {
		kind := "certificate"
		if pemType != "CERTIFICATE" {
			kind = "private key"
		}
		return nil, tlsError(fmt.Sprintf("%s %s holds no PEM %s", setting, path, kind))
	}
	return content, nil
}

type tlsSettingsError struct{ reason string }

func tlsError(reason string) error { return &tlsSettingsError{reason: reason} }

func (e *tlsSettingsError) Error() string { return "taskq: " + e.reason }

func (e *tlsSettingsError) Unwrap() error { return ErrInvalidTLSSettings }
