// Package testcerts makes the certificates of the TLS tests with crypto/x509: a CA, a server
// certificate for the names a test connects with, and a client certificate for mTLS, written
// as PEM files a taskq server and a client read.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths of the PEM files Write makes.
type Files struct {
	CA         string // the CA certificate, which signs the server's and the client's
	ServerCert string
	ServerKey  string
	ClientCert string
	ClientKey  string
}

// Write makes a CA, a server certificate for names (DNS names or IP addresses) and a client
// certificate, and writes them into dir.
func Write(dir string, names ...string) (Files, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "taskq Go test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return Files{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Files{}, err
	}
	files := Files{CA: filepath.Join(dir, "ca.pem")}
	if err := writePEM(files.CA, "CERTIFICATE", caDER); err != nil {
		return Files{}, err
	}
	issue := func(serial int64, commonName string, usage x509.ExtKeyUsage, names []string, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		template := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: commonName},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		for _, name := range names {
			if ip := net.ParseIP(name); ip != nil {
				template.IPAddresses = append(template.IPAddresses, ip)
			} else {
				template.DNSNames = append(template.DNSNames, name)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "PRIVATE KEY", keyDER)
	}
	files.ServerCert, files.ServerKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := issue(2, names[0], x509.ExtKeyUsageServerAuth, names, files.ServerCert, files.ServerKey); err != nil {
		return Files{}, err
	}
	files.ClientCert, files.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := issue(3, "taskq Go test worker", x509.ExtKeyUsageClientAuth, nil, files.ClientCert, files.ClientKey); err != nil {
		return Files{}, err
	}
	return files, nil
}

func writePEM(path, blockType string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600)
}
